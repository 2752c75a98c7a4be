  ;; Shared by the test guests: the ABI 1 exports and small helpers. The test harness pastes
  ;; this file where a guest says `;;@prelude`. Strings in data segments end with \00 so their
  ;; lengths need not be counted by hand. Memory layout: 0..64 KiB static data and scratch,
  ;; input at 64 KiB (snif_alloc grows memory to fit it).

  (memory (export "memory") 1)

  (func (export "snif_alloc") (param $n i32) (result i32)
    (local $need i32)
    (local.set $need
      (i32.shr_u (i32.add (i32.add (local.get $n) (i32.const 65536)) (i32.const 65535))
                 (i32.const 16)))
    (if (i32.gt_u (local.get $need) (memory.size))
      (then (drop (memory.grow (i32.sub (local.get $need) (memory.size))))))
    (i32.const 65536))

  ;; Length of the \00-terminated string at $p.
  (func $strlen (param $p i32) (result i32)
    (local $i i32)
    (block $done
      (loop $next
        (br_if $done (i32.eqz (i32.load8_u (i32.add (local.get $p) (local.get $i)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (local.get $i))

  ;; Index of the \00-terminated needle $n in haystack ($h, $hl), or -1.
  (func $find (param $h i32) (param $hl i32) (param $n i32) (result i32)
    (local $i i32) (local $j i32) (local $nl i32)
    (local.set $nl (call $strlen (local.get $n)))
    (block $notfound
      (loop $outer
        (br_if $notfound
          (i32.gt_s (local.get $nl) (i32.sub (local.get $hl) (local.get $i))))
        (local.set $j (i32.const 0))
        (block $mismatch
          (loop $inner
            (if (i32.eq (local.get $j) (local.get $nl)) (then (return (local.get $i))))
            (br_if $mismatch
              (i32.ne
                (i32.load8_u (i32.add (local.get $h) (i32.add (local.get $i) (local.get $j))))
                (i32.load8_u (i32.add (local.get $n) (local.get $j)))))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br $inner)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $outer)))
    (i32.const -1))

  ;; Pack (ptr, len) as snif_call's result.
  (func $ret (param $p i32) (param $l i32) (result i64)
    (i64.or (i64.shl (i64.extend_i32_u (local.get $p)) (i64.const 32))
            (i64.extend_i32_u (local.get $l))))

  ;; Return the \00-terminated string at $p.
  (func $ret_str (param $p i32) (result i64)
    (call $ret (local.get $p) (call $strlen (local.get $p))))
