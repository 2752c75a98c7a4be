;; contract-validator: a binding is invalid when any byte of the input (which carries the
;; source files' contents) spells TODO.
(module
  ;;@prelude
  (data (i32.const 1024) "TODO\00")
  (data (i32.const 1100) "{\22valid\22:true,\22messages\22:[]}\00")
  (data (i32.const 1200)
    "{\22valid\22:false,\22messages\22:[{\22level\22:\22error\22,\22message\22:\22a source file contains TODO\22}]}\00")
  (func (export "snif_call") (param $p i32) (param $n i32) (result i64)
    (if (result i64) (i32.ge_s (call $find (local.get $p) (local.get $n) (i32.const 1024))
                               (i32.const 0))
      (then (call $ret_str (i32.const 1200)))
      (else (call $ret_str (i32.const 1100))))))
