;; Reads the file whose path is the raw input, below the granted directory (fd 3), and returns
;; "OK:" and up to 4 KiB of it, or "E" and the WASI errno in decimal. The first input byte
;; chooses the lookup flags: "F" follows symlinks, "W" asks to create (write), anything else
;; neither (that byte is not part of the path).
(module
  (import "wasi_snapshot_preview1" "fd_prestat_get"
    (func $fd_prestat_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_open"
    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read"
    (func $fd_read (param i32 i32 i32 i32) (result i32)))
  ;;@prelude
  (func $errno (param $e i32) (result i64)
    ;; "E" then two or three decimal digits at 8192.
    (i32.store8 (i32.const 8192) (i32.const 69))
    (i32.store8 (i32.const 8193) (i32.add (i32.const 48) (i32.div_u (local.get $e) (i32.const 10))))
    (i32.store8 (i32.const 8194) (i32.add (i32.const 48) (i32.rem_u (local.get $e) (i32.const 10))))
    (call $ret (i32.const 8192) (i32.const 3)))
  (func (export "snif_call") (param $p i32) (param $n i32) (result i64)
    (local $e i32) (local $flags i32) (local $oflags i32) (local $mode i32)
    (local.set $e (call $fd_prestat_get (i32.const 3) (i32.const 2048)))
    (if (local.get $e) (then (return (call $errno (local.get $e)))))
    (local.set $mode (i32.load8_u (local.get $p)))
    (if (i32.eq (local.get $mode) (i32.const 70)) (then (local.set $flags (i32.const 1))))
    (if (i32.eq (local.get $mode) (i32.const 87)) (then (local.set $oflags (i32.const 1))))
    ;; path_open(3, flags, path, len, oflags, rights, inheriting, fdflags, &fd at 2100)
    (local.set $e (call $path_open (i32.const 3) (local.get $flags)
      (i32.add (local.get $p) (i32.const 1)) (i32.sub (local.get $n) (i32.const 1))
      (local.get $oflags) (i64.const -1) (i64.const -1) (i32.const 0) (i32.const 2100)))
    (if (local.get $e) (then (return (call $errno (local.get $e)))))
    ;; iovec at 2200: buf 12291 (after "OK:" at 12288), len 4096; nread at 2300.
    (i32.store (i32.const 2200) (i32.const 12291))
    (i32.store (i32.const 2204) (i32.const 4096))
    (local.set $e (call $fd_read (i32.load (i32.const 2100)) (i32.const 2200) (i32.const 1)
                                 (i32.const 2300)))
    (if (local.get $e) (then (return (call $errno (local.get $e)))))
    (i32.store8 (i32.const 12288) (i32.const 79))
    (i32.store8 (i32.const 12289) (i32.const 75))
    (i32.store8 (i32.const 12290) (i32.const 58))
    (call $ret (i32.const 12288) (i32.add (i32.const 3) (i32.load (i32.const 2300))))))
