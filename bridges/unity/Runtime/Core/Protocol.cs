using System;

namespace NpcEngine
{
    /// <summary>The wire protocol this package speaks (schemas/PROTOCOL.md).</summary>
    public static class Protocol
    {
        public const string Version = "1.4";
        public const string PackageVersion = "0.1.0";
        public const string DefaultEndpoint = "tcp://127.0.0.1:5555";

        /// <summary>True when <paramref name="other"/> has our major version (minor differences are served).</summary>
        public static bool IsCompatible(string other)
        {
            return other != null && Major(other) == Major(Version);
        }

        public static string Major(string version)
        {
            int dot = version.IndexOf('.');
            return dot < 0 ? version : version.Substring(0, dot);
        }

        /// <summary>Parses <c>tcp://host:port</c>.</summary>
        public static void ParseEndpoint(string endpoint, out string host, out int port)
        {
            const string scheme = "tcp://";
            if (endpoint == null || !endpoint.StartsWith(scheme, StringComparison.Ordinal))
            {
                throw new ArgumentException("endpoint must look like tcp://HOST:PORT, got '" + endpoint + "'");
            }
            string rest = endpoint.Substring(scheme.Length);
            int colon = rest.LastIndexOf(':');
            if (colon <= 0 || !int.TryParse(rest.Substring(colon + 1), out port) || port <= 0 || port > 65535)
            {
                throw new ArgumentException("endpoint must look like tcp://HOST:PORT, got '" + endpoint + "'");
            }
            host = rest.Substring(0, colon).Trim('[', ']');
        }
    }
}
