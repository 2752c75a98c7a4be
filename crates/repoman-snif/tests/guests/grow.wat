;; Hostile: grows its memory one page at a time, forever.
(module
  ;;@prelude
  (func (export "snif_call") (param $p i32) (param $n i32) (result i64)
    (loop $more
      (drop (memory.grow (i32.const 1)))
      (br $more))
    (i64.const 0)))
