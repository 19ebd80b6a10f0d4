// Values from files and requests as they may appear in messages and log lines.

/// A value from a request or a file as it may appear in a message or a log line: control
/// characters and other non-printing scalars escaped (so it cannot forge lines or terminal
/// output) and cut to `limit` characters.
public func quoted(_ value: String, limit: Int = 200) -> String {
    var out = ""
    var n = 0
    for scalar in value.unicodeScalars {
        if n >= limit {
            out += "…(\(value.unicodeScalars.count - n) more characters)"
            break
        }
        n += 1
        switch scalar {
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        case "\\": out += "\\\\"
        case "\"": out += "\\\""
        default:
            let v = scalar.value
            // C0, DEL, C1, and the line/paragraph separators and bidirectional controls.
            if v < 0x20 || (0x7F...0x9F).contains(v) || v == 0x2028 || v == 0x2029 || (0x202A...0x202E).contains(v)
                || (0x2066...0x2069).contains(v) || v == 0xFEFF {
                out += "\\u{" + String(v, radix: 16) + "}"
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
    }
    return out
}

/// A JSON string literal (RFC 8259: quote, backslash and control characters escaped).
public func jsonString(_ s: String) -> String {
    var out = "\""
    for u in s.unicodeScalars {
        switch u {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        default:
            if u.value < 0x20 { out += String(format: "\\u%04x", u.value) } else { out.unicodeScalars.append(u) }
        }
    }
    return out + "\""
}
