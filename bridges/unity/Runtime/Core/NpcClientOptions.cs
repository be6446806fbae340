using System;

namespace NpcEngine
{
    /// <summary>Settings of an <see cref="NpcClient"/>; the defaults suit a game on the same PC as the server.</summary>
    public sealed class NpcClientOptions
    {
        /// <summary>The server's ROUTER endpoint, <c>tcp://HOST:PORT</c>.</summary>
        public string Endpoint = Protocol.DefaultEndpoint;

        /// <summary>Sent in <c>hello</c>.</summary>
        public string ClientName = "npc-engine-unity";

        /// <summary>How long one connect attempt (TCP + ZMTP handshake) may take.</summary>
        public TimeSpan ConnectTimeout = TimeSpan.FromSeconds(3);

        /// <summary>First wait before reconnecting; it doubles per failed attempt up to <see cref="MaxReconnectDelay"/>.</summary>
        public TimeSpan MinReconnectDelay = TimeSpan.FromMilliseconds(100);

        public TimeSpan MaxReconnectDelay = TimeSpan.FromSeconds(5);

        /// <summary>
        /// Silence after which the connection counts as dead. The server pings every second, so
        /// a live connection is never this quiet.
        /// </summary>
        public TimeSpan HeartbeatTimeout = TimeSpan.FromSeconds(5);

        /// <summary>Default per-request timeout (a timed-out say is cancelled on the server).</summary>
        public TimeSpan RequestTimeout = TimeSpan.FromSeconds(30);

        /// <summary>Replies larger than this are skipped and fail their request with <see cref="ReplyTooLargeException"/>.</summary>
        public long MaxReplyBytes = 16L << 20;

        /// <summary>Bounds for decoding replies.</summary>
        public MsgPackLimits DecodeLimits = MsgPackLimits.Default;

        internal void Validate()
        {
            string host;
            int port;
            Protocol.ParseEndpoint(Endpoint, out host, out port);
            if (ConnectTimeout <= TimeSpan.Zero || HeartbeatTimeout <= TimeSpan.Zero || RequestTimeout <= TimeSpan.Zero)
            {
                throw new ArgumentException("timeouts must be positive");
            }
            if (MinReconnectDelay <= TimeSpan.Zero || MaxReconnectDelay < MinReconnectDelay)
            {
                throw new ArgumentException("reconnect delays must be positive, min <= max");
            }
            if (MaxReplyBytes <= 0)
            {
                throw new ArgumentException("MaxReplyBytes must be positive");
            }
        }
    }
}
