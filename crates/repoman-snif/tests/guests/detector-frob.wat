;; tool-detector for the made-up `frobc` compiler: it prints "Frobnicator version X.Y.Z".
(module
  ;;@prelude
  (data (i32.const 1024) "\22name\22:\22frobc\22\00")
  (data (i32.const 1100) "Frobnicator version \00")
  (data (i32.const 1200) "{\22matched\22:false}\00")
  (data (i32.const 1300)
    "{\22matched\22:true,\22tool\22:\22frob\22,\22category\22:\22compiler\22,\22version\22:\22\00")
  (func (export "snif_call") (param $p i32) (param $n i32) (result i64)
    (local $at i32) (local $out i32) (local $c i32)
    (if (i32.lt_s (call $find (local.get $p) (local.get $n) (i32.const 1024)) (i32.const 0))
      (then (return (call $ret_str (i32.const 1200)))))
    (local.set $at (call $find (local.get $p) (local.get $n) (i32.const 1100)))
    (if (i32.lt_s (local.get $at) (i32.const 0))
      (then (return (call $ret_str (i32.const 1200)))))
    ;; $at: first byte of the version in the input.
    (local.set $at (i32.add (i32.add (local.get $p) (local.get $at)) (i32.const 20)))
    ;; Output at 4096: the prefix, the version's [0-9.] bytes, then "}.
    (memory.copy (i32.const 4096) (i32.const 1300) (call $strlen (i32.const 1300)))
    (local.set $out (i32.add (i32.const 4096) (call $strlen (i32.const 1300))))
    (block $end
      (loop $next
        (local.set $c (i32.load8_u (local.get $at)))
        (br_if $end (i32.eqz (i32.or (i32.eq (local.get $c) (i32.const 46))
                                    (i32.and (i32.ge_u (local.get $c) (i32.const 48))
                                             (i32.le_u (local.get $c) (i32.const 57))))))
        (i32.store8 (local.get $out) (local.get $c))
        (local.set $out (i32.add (local.get $out) (i32.const 1)))
        (local.set $at (i32.add (local.get $at) (i32.const 1)))
        (br $next)))
    (i32.store8 (local.get $out) (i32.const 34))
    (i32.store8 (i32.add (local.get $out) (i32.const 1)) (i32.const 125))
    (call $ret (i32.const 4096) (i32.sub (i32.add (local.get $out) (i32.const 2)) (i32.const 4096)))))
