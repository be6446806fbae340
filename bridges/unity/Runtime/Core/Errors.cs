using System;

namespace NpcEngine
{
    /// <summary>
    /// The root of every error this package raises. <see cref="Code"/> is the server's wire code
    /// (schemas/PROTOCOL.md section 6) for <see cref="ServerException"/>, or one of the local codes
    /// in <see cref="LocalCodes"/> for errors found on this side.
    /// </summary>
    public class NpcEngineException : Exception
    {
        public string Code { get; private set; }

        /// <summary>The request this error belongs to, or null for connection-level errors.</summary>
        public string RequestId { get; private set; }

        public NpcEngineException(string code, string message, string requestId = null, Exception inner = null)
            : base(message, inner)
        {
            Code = code;
            RequestId = requestId;
        }
    }

    /// <summary>Codes for errors detected by this client rather than sent by the server.</summary>
    public static class LocalCodes
    {
        /// <summary>The server cannot be reached (connect refused, timed out, DNS).</summary>
        public const string ConnectFailed = "connect_failed";
        /// <summary>The connection dropped; requests in flight on it fail with this.</summary>
        public const string ConnectionLost = "connection_lost";
        /// <summary>A frame broke ZMTP (bad greeting, bad flags, a multi-frame message).</summary>
        public const string MalformedFrame = "malformed_frame";
        /// <summary>A message body was not one msgpack map, or was over the decoder's limits.</summary>
        public const string BadMessage = "bad_message";
        /// <summary>A reply was larger than <see cref="NpcClientOptions.MaxReplyBytes"/>; it was skipped.</summary>
        public const string ReplyTooLarge = "reply_too_large";
        /// <summary>The server speaks another protocol major version.</summary>
        public const string VersionMismatch = "unsupported_version";
        /// <summary>No reply within the request's timeout.</summary>
        public const string Timeout = "timeout";
        /// <summary>The client was disposed.</summary>
        public const string Closed = "closed";
        /// <summary>A say's draft callback threw; that say failed (and was cancelled on the server).</summary>
        public const string CallbackFailed = "callback_failed";
        /// <summary><see cref="NpcServerProcess"/> could not start the server, or it exited before listening.</summary>
        public const string ServerStartFailed = "server_start_failed";
        /// <summary>A server bundle is missing, incomplete, or for another OS (<see cref="NpcServerBundle"/>).</summary>
        public const string BadBundle = "bad_bundle";
        /// <summary>A component's setting is invalid (an endpoint, an unknown placeholder in NpcServer's arguments).</summary>
        public const string InvalidConfig = "invalid_config";
    }

    /// <summary>The server answered with <c>ok: false</c>.</summary>
    public class ServerException : NpcEngineException
    {
        /// <summary>The error's <c>details</c> map (may be empty).</summary>
        public PackMap Details { get; private set; }

        public ServerException(string code, string message, PackMap details, string requestId)
            : base(code, message, requestId)
        {
            Details = details ?? new PackMap();
        }
    }

    /// <summary>The server is at a limit (<c>busy</c>); retry later. <c>Details["limit"]</c> names it.</summary>
    public sealed class BusyException : ServerException
    {
        public BusyException(string message, PackMap details, string requestId)
            : base("busy", message, details, requestId)
        {
        }
    }

    /// <summary>Protocol 1.4: the state a say was prepared on was replaced while it was generated (a save
    /// loaded, the character deleted, a world fact changed; <c>state_changed</c>). Nothing was applied:
    /// ask again. <c>Details["scopes"]</c> names what changed ("world", "character:ID").</summary>
    public sealed class StateChangedException : ServerException
    {
        public StateChangedException(string message, PackMap details, string requestId)
            : base("state_changed", message, details, requestId)
        {
        }
    }

    /// <summary>Client and server protocol majors differ (from the server, or found by <c>hello</c>).</summary>
    public sealed class VersionMismatchException : ServerException
    {
        public VersionMismatchException(string message, PackMap details, string requestId)
            : base(LocalCodes.VersionMismatch, message, details, requestId)
        {
        }
    }

    /// <summary>A frame or message from the peer could not be read (local codes malformed_frame, bad_message).</summary>
    public sealed class ProtocolViolationException : NpcEngineException
    {
        public ProtocolViolationException(string code, string message, string requestId = null)
            : base(code, message, requestId)
        {
        }
    }

    /// <summary>The connection failed or dropped (local codes connect_failed, connection_lost).</summary>
    public sealed class ConnectionException : NpcEngineException
    {
        public ConnectionException(string code, string message, string requestId = null, Exception inner = null)
            : base(code, message, requestId, inner)
        {
        }
    }

    /// <summary>A reply exceeded <see cref="NpcClientOptions.MaxReplyBytes"/>.</summary>
    public sealed class ReplyTooLargeException : NpcEngineException
    {
        public long NumBytes { get; private set; }

        public ReplyTooLargeException(long numBytes, long maxBytes, string requestId)
            : base(LocalCodes.ReplyTooLarge, "a reply of " + numBytes + " bytes is over the client's cap of " + maxBytes + " bytes", requestId)
        {
            NumBytes = numBytes;
        }
    }

    /// <summary>No reply within the request's timeout (a timed-out say is cancelled on the server).</summary>
    public sealed class NpcTimeoutException : NpcEngineException
    {
        public NpcTimeoutException(string message, string requestId)
            : base(LocalCodes.Timeout, message, requestId)
        {
        }
    }

    /// <summary>The client was disposed while the request was outstanding, or before it was made.</summary>
    public sealed class ClientClosedException : NpcEngineException
    {
        public ClientClosedException(string message, string requestId = null)
            : base(LocalCodes.Closed, message, requestId)
        {
        }
    }

    /// <summary>Bytes that are not valid protocol msgpack.</summary>
    public sealed class MsgPackException : Exception
    {
        public MsgPackException(string message) : base(message)
        {
        }
    }
}
