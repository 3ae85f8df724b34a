import CZlib
import Foundation

/// A block of log lines on disk: one JSON object per line (LogLine's short keys), deflated with zlib. Log text
/// repeats itself (the same fields, units and phrases on every line), so a block of a few hundred lines shrinks to a
/// small part of its raw size.
enum LogBlockCodec {
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    static func encode(_ lines: [LogLine]) throws -> (data: Data, rawBytes: Int) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        var raw = Data()
        for line in lines {
            raw.append(try encoder.encode(line))
            raw.append(0x0A)
        }
        return (try deflate(raw), raw.count)
    }

    static func decode(_ data: Data) throws -> [LogLine] {
        let raw = try inflate(data)
        let decoder = JSONDecoder()
        var lines: [LogLine] = []
        var start = raw.startIndex
        while start < raw.endIndex {
            let end = raw[start...].firstIndex(of: 0x0A) ?? raw.endIndex
            if end > start { lines.append(try decoder.decode(LogLine.self, from: raw[start..<end])) }
            start = end < raw.endIndex ? raw.index(after: end) : end
        }
        return lines
    }

    static func deflate(_ input: Data, level: Int32 = 6) throws -> Data {
        var bound = compressBound(uLong(input.count))
        var output = Data(count: Int(bound))
        let status = output.withUnsafeMutableBytes { out in
            input.withUnsafeBytes { source in
                compress2(
                    out.bindMemory(to: Bytef.self).baseAddress, &bound, source.bindMemory(to: Bytef.self).baseAddress, uLong(input.count), level)
            }
        }
        guard status == Z_OK else { throw Failure(description: "zlib could not compress a log block (status \(status))") }
        output.count = Int(bound)
        return output
    }

    /// Inflates a zlib stream of any size (the raw size is not stored), refusing more than `limit` bytes.
    static func inflate(_ input: Data, limit: Int = 64 << 20) throws -> Data {
        var stream = z_stream()
        guard inflateInit_(&stream, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw Failure(description: "zlib could not start inflating")
        }
        defer { inflateEnd(&stream) }
        var output = Data()
        var chunk = [UInt8](repeating: 0, count: 256 << 10)
        var status: Int32 = Z_OK
        try input.withUnsafeBytes { (source: UnsafeRawBufferPointer) in
            stream.next_in = UnsafeMutablePointer(mutating: source.bindMemory(to: Bytef.self).baseAddress)
            stream.avail_in = uInt(input.count)
            repeat {
                let produced = chunk.withUnsafeMutableBufferPointer { buffer -> Int in
                    stream.next_out = buffer.baseAddress
                    stream.avail_out = uInt(buffer.count)
                    status = CZlib.inflate(&stream, Z_NO_FLUSH)
                    return buffer.count - Int(stream.avail_out)
                }
                guard status == Z_OK || status == Z_STREAM_END else {
                    throw Failure(description: "a log block is damaged (zlib status \(status))")
                }
                output.append(contentsOf: chunk[0..<produced])
                if output.count > limit { throw Failure(description: "a log block inflates past \(limit) bytes") }
                if status == Z_OK, produced == 0, stream.avail_in == 0 {
                    throw Failure(description: "a log block ends early")
                }
            } while status != Z_STREAM_END
        }
        return output
    }
}
