;; Hostile: never returns.
(module
  ;;@prelude
  (func (export "snif_call") (param $p i32) (param $n i32) (result i64)
    (loop $forever (br $forever))
    (i64.const 0)))
