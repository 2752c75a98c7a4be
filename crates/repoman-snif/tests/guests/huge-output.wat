;; Hostile: claims a 1 GiB output.
(module
  ;;@prelude
  (func (export "snif_call") (param $p i32) (param $n i32) (result i64)
    (call $ret (i32.const 0) (i32.const 1073741824))))
