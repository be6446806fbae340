using System;
using System.Collections.Generic;
using System.IO;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Threading;

namespace NpcEngine.Tests
{
    /// <summary>
    /// A scripted ZMTP peer on loopback, for what a real server never does (malformed frames,
    /// another protocol version). It checks the client's greeting and READY byte for byte.
    /// </summary>
    public sealed class FakeServer : IDisposable
    {
        private readonly TcpListener _listener;
        private readonly List<TcpClient> _accepted = new List<TcpClient>();

        public FakeServer()
        {
            _listener = new TcpListener(IPAddress.Loopback, 0);
            _listener.Start();
        }

        public string Endpoint { get { return "tcp://127.0.0.1:" + ((IPEndPoint)_listener.LocalEndpoint).Port; } }

        /// <summary>Accepts one client and completes the handshake as a ROUTER; returns its stream.</summary>
        public NetworkStream Accept(TimeSpan timeout)
        {
            IAsyncResult pending = _listener.BeginAcceptTcpClient(null, null);
            if (!pending.AsyncWaitHandle.WaitOne(timeout))
            {
                throw new TimeoutException("no client connected");
            }
            TcpClient client = _listener.EndAcceptTcpClient(pending);
            _accepted.Add(client);
            NetworkStream stream = client.GetStream();
            stream.ReadTimeout = 10000;
            byte[] greeting = ReadExactly(stream, 64);
            if (Convert.ToBase64String(greeting) != Convert.ToBase64String(ZmtpStream.Greeting()))
            {
                throw new InvalidDataException("the client's greeting is not the ZMTP 3.1 NULL client greeting");
            }
            byte[] serverGreeting = ZmtpStream.Greeting();
            serverGreeting[32] = 1;  // as-server
            stream.Write(serverGreeting, 0, 64);
            byte[] ready = ReadFrame(stream, out byte flags);
            string readyText = Encoding.ASCII.GetString(ready);
            if (flags != 0x04 || !readyText.Contains("READY") || !readyText.Contains("Socket-Type") || !readyText.Contains("DEALER"))
            {
                throw new InvalidDataException("the client's READY is not a DEALER's: " + readyText);
            }
            WriteFrame(stream, 0x04, Ready("ROUTER"));
            return stream;
        }

        public static byte[] Ready(string socketType)
        {
            MemoryStream body = new MemoryStream();
            body.WriteByte(5);
            body.Write(Encoding.ASCII.GetBytes("READY"), 0, 5);
            body.WriteByte(11);
            body.Write(Encoding.ASCII.GetBytes("Socket-Type"), 0, 11);
            body.Write(new byte[] { 0, 0, 0, (byte)socketType.Length }, 0, 4);
            body.Write(Encoding.ASCII.GetBytes(socketType), 0, socketType.Length);
            return body.ToArray();
        }

        public static void WriteFrame(Stream stream, byte flags, byte[] body)
        {
            if (body.Length > 255)
            {
                stream.WriteByte((byte)(flags | 0x02));
                for (int shift = 56; shift >= 0; shift -= 8)
                {
                    stream.WriteByte((byte)((long)body.Length >> shift));
                }
            }
            else
            {
                stream.WriteByte(flags);
                stream.WriteByte((byte)body.Length);
            }
            stream.Write(body, 0, body.Length);
            stream.Flush();
        }

        public static byte[] ReadFrame(Stream stream, out byte flags)
        {
            flags = ReadExactly(stream, 1)[0];
            long size;
            if ((flags & 0x02) != 0)
            {
                size = 0;
                foreach (byte b in ReadExactly(stream, 8))
                {
                    size = (size << 8) | b;
                }
            }
            else
            {
                size = ReadExactly(stream, 1)[0];
            }
            return ReadExactly(stream, (int)size);
        }

        /// <summary>Reads the next message frame (skipping commands such as PONG, which it returns in <paramref name="commands"/>).</summary>
        public static PackMap ReadRequest(Stream stream, List<byte[]> commands = null)
        {
            while (true)
            {
                byte flags;
                byte[] body = ReadFrame(stream, out flags);
                if ((flags & 0x04) == 0)
                {
                    return MsgPack.DecodeMap(body, MsgPackLimits.Default);
                }
                if (commands != null)
                {
                    commands.Add(body);
                }
            }
        }

        public static byte[] ReadExactly(Stream stream, int count)
        {
            byte[] buffer = new byte[count];
            int offset = 0;
            while (offset < count)
            {
                int read = stream.Read(buffer, offset, count - offset);
                if (read <= 0)
                {
                    throw new EndOfStreamException();
                }
                offset += read;
            }
            return buffer;
        }

        public void Dispose()
        {
            foreach (TcpClient client in _accepted)
            {
                client.Close();
            }
            _listener.Stop();
        }
    }
}
