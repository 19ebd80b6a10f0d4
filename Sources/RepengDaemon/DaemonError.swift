// The daemon's request errors and the one place where every error becomes an RPC status.
import Foundation
import GRPCCore
import RepengEngine
import RepengSteering

/// Why a request was refused or failed.
public enum DaemonError: Error, CustomStringConvertible, Sendable, Equatable {
    /// No model is configured under this name.
    case unknownModel(name: String, known: [String])
    /// No NAME.gguf or NAME.json in the vector directory.
    case unknownVector(name: String, directory: String)
    /// The vector file exists but does not load.
    case unusableVector(name: String, reason: String)
    /// A vector or model name that is not `[A-Za-z0-9_.-]{1,64}`.
    case invalidName(what: String, name: String)
    /// NAME.gguf (or NAME.json) exists and overwrite was not asked for.
    case vectorExists(name: String)
    /// A request field is wrong; the message says what to fix.
    case invalidArgument(String)
    /// A limit was reached (queue full, too many trainings).
    case resourceExhausted(String)
    /// The daemon is shutting down.
    case shuttingDown
    /// The caller's uid is not in `allowed_uids`.
    case permissionDenied(uid: String)
    /// Something failed inside the daemon (I/O, an engine fault).
    case internalFailure(String)

    public var description: String {
        switch self {
        case let .unknownModel(n, known):
            return "unknown model '\(quoted(n))' (configured: \(known.joined(separator: ", ")))"
        case let .unknownVector(n, dir):
            let q = quoted(n)
            return "unknown vector '\(q)': no \(q).gguf or \(q).json in \(dir) (see `repengctl vectors`)"
        case let .unusableVector(n, r): return "vector '\(quoted(n))' cannot be used: \(r)"
        case let .invalidName(what, n):
            return "invalid \(what) '\(quoted(n))': use 1-64 characters from A-Z a-z 0-9 _ . - (not starting with '.')"
        case .vectorExists(let n): return "vector '\(quoted(n))' already exists; pass overwrite (repengctl train --force) to replace it"
        case .invalidArgument(let m): return m
        case .resourceExhausted(let m): return m
        case .shuttingDown: return "the daemon is shutting down"
        case .permissionDenied(let uid):
            return "uid \(uid) may not use this repengd (not in allowed_uids of its config)"
        case .internalFailure(let m): return m
        }
    }
}

/// Longest status message sent to a client, in characters (a stock client limits metadata size).
let maxStatusMessage = 1000

/// Maps any error thrown while serving a request to the status the client sees. This is the
/// only place where errors are given codes.
public func rpcError(_ error: any Error) -> RPCError {
    let e = rpcStatus(error)
    guard e.message.count > maxStatusMessage else { return e }
    return RPCError(code: e.code, message: String(e.message.prefix(maxStatusMessage)) + "…")
}

private func rpcStatus(_ error: any Error) -> RPCError {
    if let e = error as? RPCError { return e }
    if let c = error as? any RPCErrorConvertible { return RPCError(c) }
    let (code, message): (RPCError.Code, String)
    switch error {
    case let e as DaemonError:
        switch e {
        case .unknownModel, .unknownVector: code = .notFound
        case .unusableVector: code = .failedPrecondition
        case .invalidName, .invalidArgument: code = .invalidArgument
        case .vectorExists: code = .alreadyExists
        case .resourceExhausted: code = .resourceExhausted
        case .shuttingDown: code = .unavailable
        case .permissionDenied: code = .permissionDenied
        case .internalFailure: code = .internalError
        }
        message = e.description
    case let e as ControlError:
        switch e {
        case .noTokenizer, .featureSpace: code = .failedPrecondition
        default: code = .invalidArgument
        }
        message = e.description
    case let e as EngineError:
        switch e {
        case .tokenOutOfRange, .contextOverflow, .layerOutOfRange, .hiddenIndexOutOfRange, .steeringSize, .emptySequence,
             .invalidArgument:
            code = .invalidArgument
        default:
            code = .internalError
        }
        message = e.description
    case let e as TrainingError:
        if case .datasetTooLong = e { code = .resourceExhausted } else { code = .invalidArgument }
        message = "training failed: \(e.description)"
    case let e as DatasetError:
        code = .invalidArgument
        message = e.description
    case let e as ChatError:
        code = .invalidArgument
        message = e.description
    case let e as SAEError:
        switch e {
        case .notFound: code = .notFound
        case .hiddenSizeMismatch, .layerOutOfRange: code = .failedPrecondition
        default: code = .invalidArgument
        }
        message = e.description
    case let e as ControlVectorError:
        code = .invalidArgument
        message = e.description
    case let e as VectorFileError:
        switch e {
        case .io: code = .internalError
        default: code = .invalidArgument
        }
        message = e.description
    case let e as DurableFileError:
        if case let .io(_, _, errno) = e, errno == ENOSPC || errno == EDQUOT {
            code = .resourceExhausted
            message = "\(e.description); nothing was written (free some space and retry)"
        } else {
            code = .internalError
            message = e.description
        }
    case is CancellationError:
        code = .cancelled
        message = "the request was cancelled"
    default:
        code = .internalError
        message = "\(error)"
    }
    return RPCError(code: code, message: message)
}
