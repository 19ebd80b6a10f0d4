// Scalar reference decoders for the ggml block formats, one element at a time from the layouts in ggml-common.h.

extension Dequant {
    /// Readable per-element decoding used to check the SIMD kernels; not for hot paths.
    enum Reference {
        /// Decodes the one block in `b` (exactly `type.blockBytes` bytes) into `y` (`type.blockSize` floats).
        static func decodeBlock(_ type: GGMLType, _ b: UnsafeBufferPointer<UInt8>, _ y: UnsafeMutableBufferPointer<Float>) {
            switch type {
            case .f32:
                y[0] = Float(bitPattern: u32(b, 0))
            case .f16:
                y[0] = halfToFloatReference(u16(b, 0))
            case .bf16:
                // bfloat16 is the upper 16 bits of a binary32.
                y[0] = Float(bitPattern: UInt32(u16(b, 0)) << 16)
            case .q4_0:
                let d = half(b, 0)
                for i in 0..<32 {
                    y[i] = Float(Int(nibble(b, 2, i)) - 8) * d
                }
            case .q4_1:
                let d = half(b, 0), m = half(b, 2)
                for i in 0..<32 {
                    y[i] = Float(nibble(b, 4, i)) * d + m
                }
            case .q5_0:
                let d = half(b, 0)
                let qh = u32(b, 2)
                for i in 0..<32 {
                    let q = Int(nibble(b, 6, i)) | Int((qh >> UInt32(i)) & 1) << 4
                    y[i] = Float(q - 16) * d
                }
            case .q5_1:
                let d = half(b, 0), m = half(b, 2)
                let qh = u32(b, 4)
                for i in 0..<32 {
                    let q = Int(nibble(b, 8, i)) | Int((qh >> UInt32(i)) & 1) << 4
                    y[i] = Float(q) * d + m
                }
            case .q8_0:
                let d = half(b, 0)
                for i in 0..<32 {
                    y[i] = Float(Int8(bitPattern: b[2 + i])) * d
                }
            case .q4_K:
                let d = half(b, 0), dmin = half(b, 2)
                for i in 0..<256 {
                    let sub = i / 32                               // 8 sub-blocks of 32
                    let (sc, m) = kScaleMin(b, 4, sub)
                    let byte = b[16 + (sub / 2) * 32 + i % 32]     // sub-blocks 2c, 2c+1 share 32 bytes
                    let q = sub % 2 == 0 ? byte & 0x0F : byte >> 4
                    y[i] = (d * Float(sc)) * Float(q) - dmin * Float(m)
                }
            case .q5_K:
                let d = half(b, 0), dmin = half(b, 2)
                for i in 0..<256 {
                    let sub = i / 32
                    let (sc, m) = kScaleMin(b, 4, sub)
                    let byte = b[48 + (sub / 2) * 32 + i % 32]
                    let low = sub % 2 == 0 ? byte & 0x0F : byte >> 4
                    let high = (b[16 + i % 32] >> UInt8(sub)) & 1  // bit `sub` of qh[i % 32]
                    y[i] = (d * Float(sc)) * Float(low | high << 4) - dmin * Float(m)
                }
            case .q6_K:
                let d = half(b, 208)
                for i in 0..<256 {
                    let halfIndex = i / 128, r = i % 128
                    let group = r / 32, l = r % 32                 // four groups of 32 per half
                    let lowByte = b[64 * halfIndex + l + (group % 2 == 1 ? 32 : 0)]
                    let low = group < 2 ? lowByte & 0x0F : lowByte >> 4
                    let high = (b[128 + 32 * halfIndex + l] >> UInt8(2 * group)) & 3
                    let q = Int(low | high << 4) - 32
                    let sc = Int8(bitPattern: b[192 + i / 16])     // one scale per 16 elements
                    y[i] = (d * Float(sc)) * Float(q)
                }
            default:
                // Callers validate the type first; leave nothing uninitialized regardless.
                for i in y.indices { y[i] = .nan }
            }
        }

        /// Element `i` (0 ..< 32) of a 32-element 4-bit array at `offset`: elements 0–15 are the low
        /// nibbles of the 16 bytes, elements 16–31 the high nibbles.
        static func nibble(_ b: UnsafeBufferPointer<UInt8>, _ offset: Int, _ i: Int) -> UInt8 {
            let byte = b[offset + i % 16]
            return i < 16 ? byte & 0x0F : byte >> 4
        }

        /// Scale and min (6 bits each) of sub-block `j` from the 12 bytes at `offset`:
        /// bytes 0–3 hold scales 0–3 in their low 6 bits and the top 2 bits of scales 4–7;
        /// bytes 4–7 hold mins 0–3 likewise with the top 2 bits of mins 4–7;
        /// bytes 8–11 hold the low 4 bits of scales 4–7 (low nibble) and mins 4–7 (high nibble).
        static func kScaleMin(_ b: UnsafeBufferPointer<UInt8>, _ offset: Int, _ j: Int) -> (UInt8, UInt8) {
            let s = { (k: Int) in b[offset + k] }
            if j < 4 {
                return (s(j) & 0x3F, s(4 + j) & 0x3F)
            }
            let k = j - 4
            let scale = (s(8 + k) & 0x0F) | ((s(k) >> 6) << 4)
            let min = (s(8 + k) >> 4) | ((s(4 + k) >> 6) << 4)
            return (scale, min)
        }

        static func u16(_ b: UnsafeBufferPointer<UInt8>, _ offset: Int) -> UInt16 {
            UInt16(b[offset]) | UInt16(b[offset + 1]) << 8
        }

        static func u32(_ b: UnsafeBufferPointer<UInt8>, _ offset: Int) -> UInt32 {
            (0..<4).reduce(UInt32(0)) { $0 | UInt32(b[offset + $1]) << (8 * UInt32($1)) }
        }

        static func half(_ b: UnsafeBufferPointer<UInt8>, _ offset: Int) -> Float {
            halfToFloatReference(u16(b, offset))
        }
    }
}
