// IEEE 754-2008 binary16 ("half") and bfloat16 to binary32 conversion, exact for every bit pattern.

extension Dequant {
    /// Converts IEEE binary16 bits to a Float, exactly: normals, subnormals, ±0 and ±inf map to the
    /// equal Float; NaNs stay NaN with their sign and payload shifted into the Float's mantissa
    /// (never quieted). Branch-light bit manipulation for per-block scale factors.
    @inlinable @inline(__always)
    internal static func halfToFloat(_ h: UInt16) -> Float {
        let bits = UInt32(h)
        var o = (bits & 0x7FFF) &<< 13            // exponent and mantissa in Float position
        let exponent = o & 0x0F80_0000
        o &+= (127 - 15) &<< 23                   // rebias the exponent
        if exponent == 0x0F80_0000 {
            o &+= (128 - 16) &<< 23               // inf / NaN: exponent all ones
        } else if exponent == 0 {
            // Zero or subnormal: treat the mantissa as a normal number with exponent 2^-14 and
            // subtract the implicit one; the subtraction is exact in binary32.
            o &+= 1 &<< 23
            o = (Float(bitPattern: o) - Float(bitPattern: 113 &<< 23)).bitPattern
        }
        return Float(bitPattern: o | ((bits & 0x8000) &<< 16))
    }

    /// Converts 16 IEEE binary16 values at once; same results, bit for bit, as `halfToFloat`.
    /// Lane selection uses all-ones / all-zero masks built with shifts (no SIMD compares, which the
    /// compiler lowers to per-lane loops).
    @inlinable @inline(__always)
    internal static func halfToFloat(_ h: SIMD16<UInt16>) -> SIMD16<Float> {
        let bits = SIMD16<UInt32>(truncatingIfNeeded: h)
        var o = (bits & 0x7FFF) &<< 13
        let exponent = o & 0x0F80_0000                          // a multiple of 2^23 in 0 ... 31·2^23
        o &+= (127 - 15) &<< 23
        // exponent == 31·2^23 exactly when exponent + 2^23 reaches bit 28.
        let infNaN = SIMD16<UInt32>(repeating: 0) &- ((exponent &+ 0x0080_0000) &>> 28)
        // exponent == 0 exactly when exponent − 1 wraps around to set bit 31.
        let small = SIMD16<UInt32>(repeating: 0) &- ((exponent &- 1) &>> 31)
        o &+= infNaN & ((128 - 16) &<< 23)
        o &+= small & (1 &<< 23)
        let magic = Float(bitPattern: 113 &<< 23)
        let adjusted: SIMD16<Float> = unsafeBitCast(o, to: SIMD16<Float>.self) - magic
        o = (unsafeBitCast(adjusted, to: SIMD16<UInt32>.self) & small) | (o & ~small)
        let signed: SIMD16<UInt32> = o | ((bits & 0x8000) &<< 16)
        return unsafeBitCast(signed, to: SIMD16<Float>.self)
    }

    /// Converts 16 bfloat16 values (the top half of a binary32) to Float; exact, NaNs kept as is.
    @inlinable @inline(__always)
    internal static func bfloat16ToFloat(_ h: SIMD16<UInt16>) -> SIMD16<Float> {
        unsafeBitCast(SIMD16<UInt32>(truncatingIfNeeded: h) &<< 16, to: SIMD16<Float>.self)
    }

    /// Converts one bfloat16 value to Float; exact.
    @inlinable @inline(__always)
    internal static func bfloat16ToFloat(_ h: UInt16) -> Float {
        Float(bitPattern: UInt32(h) &<< 16)
    }

    /// Reference binary16 decoding written directly from the IEEE 754 definition
    /// (sign, 5-bit exponent biased by 15, 10-bit fraction). Used to check the fast conversions.
    internal static func halfToFloatReference(_ h: UInt16) -> Float {
        let sign: UInt32 = UInt32(h >> 15) << 31
        let exponent = Int((h >> 10) & 0x1F)
        let fraction = UInt32(h & 0x3FF)
        let magnitude: Float
        switch exponent {
        case 0:
            // Subnormal or zero: fraction × 2^-24, exact in binary32.
            magnitude = Float(fraction) * 0x1p-24
        case 31:
            // Infinity (fraction 0) or NaN (fraction kept as the payload's top bits).
            return Float(bitPattern: sign | 0x7F80_0000 | (fraction << 13))
        default:
            // Normal: (1 + fraction / 1024) × 2^(exponent - 15).
            magnitude = Float(bitPattern: UInt32(exponent - 15 + 127) << 23 | (fraction << 13))
        }
        return Float(bitPattern: sign | magnitude.bitPattern)
    }
}
