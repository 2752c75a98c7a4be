;; Returns something that is not JSON when the input contains "text", else JSON that breaks
;; the validator output schema.
(module
  ;;@prelude
  (data (i32.const 1024) "text\00")
  (data (i32.const 1100) "not json at all\00")
  (data (i32.const 1200) "{\22valid\22:\22yes\22}\00")
  (func (export "snif_call") (param $p i32) (param $n i32) (result i64)
    (if (result i64) (i32.ge_s (call $find (local.get $p) (local.get $n) (i32.const 1024))
                               (i32.const 0))
      (then (call $ret_str (i32.const 1100)))
      (else (call $ret_str (i32.const 1200))))))
