;; The smallest complete plate-policy ABI v1 module: allows everything.
;; Exports: memory, plate_abi_version, plate_alloc, plate_validate_settings, plate_validate.
;; Answers are JSON documents in linear memory, returned as (offset << 32) | length.
(module
  (memory (export "memory") 1)
  ;; Answers live at fixed offsets; input buffers are bump-allocated from 4096 up.
  (data (i32.const 16) "{\"allowed\":true}")
  (data (i32.const 64) "{\"valid\":true}")
  (global $next (mut i32) (i32.const 4096))

  (func (export "plate_abi_version") (result i32)
    (i32.const 1))

  ;; Returns a buffer of $len bytes, growing memory when needed (0 if it cannot).
  (func (export "plate_alloc") (param $len i32) (result i32)
    (local $ptr i32)
    (local $end i32)
    (local.set $ptr (global.get $next))
    (local.set $end (i32.add (local.get $ptr) (local.get $len)))
    (if (i32.gt_u (local.get $end) (i32.mul (memory.size) (i32.const 65536)))
      (then
        (if (i32.eq
              (memory.grow
                (i32.add (i32.div_u (i32.sub (local.get $end) (i32.mul (memory.size) (i32.const 65536)))
                                    (i32.const 65536))
                         (i32.const 1)))
              (i32.const -1))
          (then (return (i32.const 0))))))
    (global.set $next (local.get $end))
    (local.get $ptr))

  ;; {"valid":true} at offset 64, 14 bytes.
  (func (export "plate_validate_settings") (param $ptr i32) (param $len i32) (result i64)
    (i64.or (i64.shl (i64.const 64) (i64.const 32)) (i64.const 14)))

  ;; {"allowed":true} at offset 16, 16 bytes.
  (func (export "plate_validate") (param $ptr i32) (param $len i32) (result i64)
    (i64.or (i64.shl (i64.const 16) (i64.const 32)) (i64.const 16))))
