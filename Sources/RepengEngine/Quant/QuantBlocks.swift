// SIMD per-block decoders for the ggml quantization formats (block_q4_0 … block_q6_K in ggml-common.h).
//
// Each kernel reads one block at `src` (no alignment needed) and writes its 32 or 256 floats to
// `dst`. The arithmetic is f32 with the same operation order as ggml's dequantize_row_* functions
// (scale × quant [+ min] or (d × sub-scale) × quant − dmin × sub-min), so results match bit for bit.
// Block layouts (little-endian, f16 = IEEE binary16):
//   Q4_0  18 B: d:f16, qs[16]            x[j] = d·(lo(qs[j])−8), x[j+16] = d·(hi(qs[j])−8)
//   Q4_1  20 B: d:f16, m:f16, qs[16]     x = d·q + m
//   Q5_0  22 B: d:f16, qh:u32, qs[16]    5th bit of element j is bit j of qh; x = d·(q−16)
//   Q5_1  24 B: d:f16, m:f16, qh:u32, qs[16]                                 x = d·q + m
//   Q8_0  34 B: d:f16, qs:i8[32]         x = d·q
//   Q4_K 144 B: d, dmin:f16, scales[12] (8 × 6-bit scale/min pairs), qs[128] (4 chunks of 32 bytes,
//               low nibbles = sub-block 2c, high nibbles = sub-block 2c+1); x = (d·sc)·q − dmin·m
//   Q5_K 176 B: as Q4_K with qh[32] before qs; bit s of qh[l] is the 5th bit of element l of sub-block s
//   Q6_K 210 B: ql[128], qh[64], scales:i8[16], d:f16; two halves of 128 elements, 16 per scale;
//               x = (d·sc)·(q−32)
//
// Everything works on 16-lane vectors with element-wise arithmetic, constant or uniform shifts and
// bit masks: the stdlib's SIMD16 widening conversions compile to a few shuffles, whereas SIMD32
// conversions, lane compares and `replacing(with:where:)` compile to per-lane loops.

extension Dequant {
    // MARK: Building blocks

    @inlinable @inline(__always)
    static func store(_ v: SIMD16<Float>, _ dst: UnsafeMutablePointer<Float>) {
        UnsafeMutableRawPointer(dst).storeBytes(of: v, as: SIMD16<Float>.self)
    }

    @inlinable @inline(__always)
    static func bytes16(_ src: UnsafeRawPointer, _ offset: Int) -> SIMD16<UInt8> {
        src.loadUnaligned(fromByteOffset: offset, as: SIMD16<UInt8>.self)
    }

    /// Unsigned bytes (0 ... 255) to floats.
    @inlinable @inline(__always)
    static func toFloat(_ v: SIMD16<UInt8>) -> SIMD16<Float> {
        SIMD16<Float>(SIMD16<Int32>(truncatingIfNeeded: v))
    }

    /// Small non-negative 32-bit lanes to floats.
    @inlinable @inline(__always)
    static func toFloat(_ v: SIMD16<UInt32>) -> SIMD16<Float> {
        SIMD16<Float>(unsafeBitCast(v, to: SIMD16<Int32>.self))
    }

    @inlinable @inline(__always)
    static func loadHalf(_ src: UnsafeRawPointer, _ offset: Int) -> Float {
        halfToFloat(UInt16(littleEndian: src.loadUnaligned(fromByteOffset: offset, as: UInt16.self)))
    }

    /// 1 << j for j = 0 ..< 16: selects the 5th-bit flags of elements 0 ..< 16 in a Q5 `qh` word.
    @inlinable @inline(__always)
    static var lowBitMasks: SIMD16<UInt32> {
        SIMD16(0x1, 0x2, 0x4, 0x8, 0x10, 0x20, 0x40, 0x80,
               0x100, 0x200, 0x400, 0x800, 0x1000, 0x2000, 0x4000, 0x8000)
    }

    /// Lanes of `bits` that are non-zero (at most 2^31) become 16, zero lanes stay 0.
    @inlinable @inline(__always)
    static func sixteenIfSet(_ bits: SIMD16<UInt32>) -> SIMD16<UInt32> {
        ((bits &+ 0x7FFF_FFFF) &>> 27) & 16
    }

    /// A Q5_0 / Q5_1 block's 32 quants (0 ... 31) as two 16-lane halves: low or high nibbles of
    /// `qs` plus the 5th bits from `qh`.
    @inlinable @inline(__always)
    static func q5Quants(_ qh: UInt32, _ qs: SIMD16<UInt8>) -> (SIMD16<UInt32>, SIMD16<UInt32>) {
        let h0 = sixteenIfSet(SIMD16<UInt32>(repeating: qh) & lowBitMasks)
        let h1 = sixteenIfSet(SIMD16<UInt32>(repeating: qh &>> 16) & lowBitMasks)
        let l0 = SIMD16<UInt32>(truncatingIfNeeded: qs & 0x0F)
        let l1 = SIMD16<UInt32>(truncatingIfNeeded: qs &>> 4)
        return (l0 | h0, l1 | h1)
    }

    /// The 6-bit scale and min of sub-block `j` (0 ..< 8) from the 12 packed bytes of a Q4_K / Q5_K
    /// block: j < 4 in the low 6 bits of bytes j and j+4; j ≥ 4 in the nibbles of byte j+4 plus the
    /// top two bits of bytes j−4 (scale) and j (min).
    @inlinable @inline(__always)
    static func scaleMinK4(_ scales: UnsafeRawPointer, _ j: Int) -> (scale: UInt8, min: UInt8) {
        @inline(__always) func byte(_ i: Int) -> UInt8 { scales.load(fromByteOffset: i, as: UInt8.self) }
        if j < 4 {
            return (byte(j) & 63, byte(j &+ 4) & 63)
        }
        let packed = byte(j &+ 4)
        return ((packed & 0x0F) | ((byte(j &- 4) &>> 6) &<< 4), (packed &>> 4) | ((byte(j) &>> 6) &<< 4))
    }

    // MARK: 32-element blocks

    /// Decodes one Q4_0 block (18 bytes) into 32 floats.
    @inlinable @inline(__always)
    static func decodeBlockQ4_0(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>) {
        let d = loadHalf(src, 0)
        let qs = bytes16(src, 2)
        store((toFloat(qs & 0x0F) - 8) * d, dst)
        store((toFloat(qs &>> 4) - 8) * d, dst + 16)
    }

    /// Decodes one Q4_1 block (20 bytes) into 32 floats.
    @inlinable @inline(__always)
    static func decodeBlockQ4_1(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>) {
        let d = loadHalf(src, 0)
        let m = loadHalf(src, 2)
        let qs = bytes16(src, 4)
        store(toFloat(qs & 0x0F) * d + m, dst)
        store(toFloat(qs &>> 4) * d + m, dst + 16)
    }

    /// Decodes one Q5_0 block (22 bytes) into 32 floats.
    @inlinable @inline(__always)
    static func decodeBlockQ5_0(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>) {
        let d = loadHalf(src, 0)
        let qh = UInt32(littleEndian: src.loadUnaligned(fromByteOffset: 2, as: UInt32.self))
        let (q0, q1) = q5Quants(qh, bytes16(src, 6))
        store((toFloat(q0) - 16) * d, dst)
        store((toFloat(q1) - 16) * d, dst + 16)
    }

    /// Decodes one Q5_1 block (24 bytes) into 32 floats.
    @inlinable @inline(__always)
    static func decodeBlockQ5_1(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>) {
        let d = loadHalf(src, 0)
        let m = loadHalf(src, 2)
        let qh = UInt32(littleEndian: src.loadUnaligned(fromByteOffset: 4, as: UInt32.self))
        let (q0, q1) = q5Quants(qh, bytes16(src, 8))
        store(toFloat(q0) * d + m, dst)
        store(toFloat(q1) * d + m, dst + 16)
    }

    /// Decodes one Q8_0 block (34 bytes) into 32 floats.
    @inlinable @inline(__always)
    static func decodeBlockQ8_0(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>) {
        let d = loadHalf(src, 0)
        let q0 = src.loadUnaligned(fromByteOffset: 2, as: SIMD16<Int8>.self)
        let q1 = src.loadUnaligned(fromByteOffset: 18, as: SIMD16<Int8>.self)
        store(SIMD16<Float>(SIMD16<Int32>(truncatingIfNeeded: q0)) * d, dst)
        store(SIMD16<Float>(SIMD16<Int32>(truncatingIfNeeded: q1)) * d, dst + 16)
    }

    // MARK: 256-element K-quant super-blocks

    /// Writes scale × q − min for 16 elements of a K-quant sub-block.
    @inlinable @inline(__always)
    static func scaleSubtract(_ q: SIMD16<UInt8>, _ scale: Float, _ min: Float, _ dst: UnsafeMutablePointer<Float>) {
        store(toFloat(q) * scale - min, dst)
    }

    /// Decodes one Q4_K block (144 bytes) into 256 floats.
    @inlinable @inline(__always)
    static func decodeBlockQ4_K(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>) {
        let d = loadHalf(src, 0)
        let dmin = loadHalf(src, 2)
        let scales = src + 4
        for c in 0..<4 {
            let (sc0, m0) = scaleMinK4(scales, 2 &* c)
            let (sc1, m1) = scaleMinK4(scales, 2 &* c &+ 1)
            let d0 = d * Float(sc0), min0 = dmin * Float(m0)
            let d1 = d * Float(sc1), min1 = dmin * Float(m1)
            let out = dst + 64 &* c
            for half in 0..<2 {
                let qs = bytes16(src, 16 &+ 32 &* c &+ 16 &* half)
                scaleSubtract(qs & 0x0F, d0, min0, out + 16 &* half)
                scaleSubtract(qs &>> 4, d1, min1, out + (32 &+ 16 &* half))
            }
        }
    }

    /// Decodes one Q5_K block (176 bytes) into 256 floats.
    @inlinable @inline(__always)
    static func decodeBlockQ5_K(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>) {
        let d = loadHalf(src, 0)
        let dmin = loadHalf(src, 2)
        let scales = src + 4
        let qh = (bytes16(src, 16), bytes16(src, 32))
        for c in 0..<4 {
            let (sc0, m0) = scaleMinK4(scales, 2 &* c)
            let (sc1, m1) = scaleMinK4(scales, 2 &* c &+ 1)
            let d0 = d * Float(sc0), min0 = dmin * Float(m0)
            let d1 = d * Float(sc1), min1 = dmin * Float(m1)
            let shift0 = UInt8(2 &* c), shift1 = UInt8(2 &* c &+ 1)
            let out = dst + 64 &* c
            for half in 0..<2 {
                let ql = bytes16(src, 48 &+ 32 &* c &+ 16 &* half)
                let h = half == 0 ? qh.0 : qh.1
                let q0: SIMD16<UInt8> = (ql & 0x0F) | (((h &>> shift0) & 1) &<< 4)
                let q1: SIMD16<UInt8> = (ql &>> 4) | (((h &>> shift1) & 1) &<< 4)
                scaleSubtract(q0, d0, min0, out + 16 &* half)
                scaleSubtract(q1, d1, min1, out + (32 &+ 16 &* half))
            }
        }
    }

    /// Decodes one Q6_K block (210 bytes) into 256 floats.
    @inlinable @inline(__always)
    static func decodeBlockQ6_K(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>) {
        let d = loadHalf(src, 208)
        for half in 0..<2 {
            let out = dst + 128 &* half
            // 16 elements at a time: lanes l ..< l+16 of the four 32-element groups of this half.
            for part in 0..<2 {
                let l = 16 &* part
                let a = bytes16(src, 64 &* half &+ l)
                let b = bytes16(src, 64 &* half &+ 32 &+ l)
                let qh = bytes16(src, 128 &+ 32 &* half &+ l)
                let q0: SIMD16<UInt8> = (a & 0x0F) | ((qh & 0x03) &<< 4)
                let q1: SIMD16<UInt8> = (b & 0x0F) | (((qh &>> 2) & 0x03) &<< 4)
                let q2: SIMD16<UInt8> = (a &>> 4) | (((qh &>> 4) & 0x03) &<< 4)
                let q3: SIMD16<UInt8> = (b &>> 4) | ((qh &>> 6) &<< 4)
                // Element e of the block uses scale e / 16: group g, lanes l... → 8·half + 2·g + part.
                let s = 192 &+ 8 &* half &+ part
                store((toFloat(q0) - 32) * (d * q6Scale(src, s)), out + l)
                store((toFloat(q1) - 32) * (d * q6Scale(src, s &+ 2)), out + (32 &+ l))
                store((toFloat(q2) - 32) * (d * q6Scale(src, s &+ 4)), out + (64 &+ l))
                store((toFloat(q3) - 32) * (d * q6Scale(src, s &+ 6)), out + (96 &+ l))
            }
        }
    }

    /// The signed 8-bit Q6_K sub-block scale at byte `offset` of the block.
    @inlinable @inline(__always)
    static func q6Scale(_ src: UnsafeRawPointer, _ offset: Int) -> Float {
        Float(src.load(fromByteOffset: offset, as: Int8.self))
    }
}
