;; policy-rule: deny a sync by an agent actor; allow everything else.
(module
  ;;@prelude
  (data (i32.const 1024) "\22operation\22:\22sync\22\00")
  (data (i32.const 1100) "\22actor_kind\22:\22agent\22\00")
  (data (i32.const 1200) "{\22effect\22:\22deny\22,\22reason\22:\22agents may not sync backups\22}\00")
  (data (i32.const 1400) "{\22effect\22:\22allow\22,\22reason\22:\22not an agent sync\22}\00")
  (func (export "snif_call") (param $p i32) (param $n i32) (result i64)
    (if (result i64)
        (i32.and
          (i32.ge_s (call $find (local.get $p) (local.get $n) (i32.const 1024)) (i32.const 0))
          (i32.ge_s (call $find (local.get $p) (local.get $n) (i32.const 1100)) (i32.const 0)))
      (then (call $ret_str (i32.const 1200)))
      (else (call $ret_str (i32.const 1400))))))
