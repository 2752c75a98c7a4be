;; Imports the wall clock (its manifest asks for `clock`), and returns a valid verdict.
(module
  (import "wasi_snapshot_preview1" "clock_time_get"
    (func $clock_time_get (param i32 i64 i32) (result i32)))
  ;;@prelude
  (data (i32.const 1100) "{\22valid\22:true,\22messages\22:[]}\00")
  (func (export "snif_call") (param $p i32) (param $n i32) (result i64)
    (drop (call $clock_time_get (i32.const 0) (i64.const 1) (i32.const 2048)))
    (call $ret_str (i32.const 1100))))
