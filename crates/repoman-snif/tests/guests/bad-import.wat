;; Hostile: imports a function no SNIF host provides.
(module
  (import "env" "system" (func $system (param i32) (result i32)))
  ;;@prelude
  (func (export "snif_call") (param $p i32) (param $n i32) (result i64)
    (drop (call $system (i32.const 0)))
    (i64.const 0)))
