;; Hostile: asks for 64 MiB of memory before it runs (the prelude's memory is not used).
(module
  (memory (export "memory") 1024)
  (func (export "snif_alloc") (param $n i32) (result i32) (i32.const 0))
  (func (export "snif_call") (param $p i32) (param $n i32) (result i64) (i64.const 0)))
