using System;
using System.IO;
using System.Text;

namespace NpcEngine
{
    /// <summary>What <see cref="ZmtpStream.ReadMessage"/> found.</summary>
    public enum ZmtpReadKind
    {
        /// <summary>One single-frame message: <see cref="ZmtpIncoming.Body"/>.</summary>
        Message,
        /// <summary>A message over the cap; its body was skipped (<see cref="ZmtpIncoming.RequestId"/> if it could be read).</summary>
        Oversized,
        /// <summary>A message of several frames, which the protocol never sends; skipped.</summary>
        Multipart,
    }

    public sealed class ZmtpIncoming
    {
        public ZmtpReadKind Kind;
        public byte[] Body;
        public long NumBytes;
        public string RequestId;
    }

    /// <summary>
    /// ZMTP 3.1 for a DEALER with the NULL mechanism over any byte stream (schemas/PROTOCOL.md
    /// section 1): greeting, READY handshake, framing, PING answered with PONG. One thread reads;
    /// writes from any thread are serialized.
    /// </summary>
    public sealed class ZmtpStream
    {
        private const byte FlagMore = 0x01;
        private const byte FlagLong = 0x02;
        private const byte FlagCommand = 0x04;
        private const int MaxCommandBytes = 64 << 10;
        private const int PeekBytes = 512;

        private readonly Stream _stream;
        private readonly object _writeLock = new object();
        private int _numPingsAnswered;

        public ZmtpStream(Stream stream)
        {
            _stream = stream;
        }

        /// <summary>PING commands answered so far on this stream.</summary>
        public int NumPingsAnswered { get { return _numPingsAnswered; } }

        /// <summary>The 64-byte greeting of a NULL-mechanism client (as-server false).</summary>
        public static byte[] Greeting()
        {
            byte[] greeting = new byte[64];
            greeting[0] = 0xff;
            greeting[9] = 0x7f;
            greeting[10] = 3;
            greeting[11] = 1;
            Encoding.ASCII.GetBytes("NULL", 0, 4, greeting, 12);
            return greeting;
        }

        /// <summary>Exchanges greetings and READY commands. Throws <see cref="ProtocolViolationException"/> on a peer that is not a ZMTP 3 NULL ROUTER.</summary>
        public void Handshake(string socketType = "DEALER")
        {
            lock (_writeLock)
            {
                byte[] greeting = Greeting();
                _stream.Write(greeting, 0, greeting.Length);
                _stream.Flush();
            }
            byte[] peer = ReadExactly(64);
            if (peer[0] != 0xff || (peer[9] & 0x01) != 0x01)
            {
                throw Malformed("the peer's greeting has no ZMTP signature (is this an npc-engine server?)");
            }
            if (peer[10] < 3)
            {
                throw Malformed("the peer speaks ZMTP " + peer[10] + "." + peer[11] + "; 3.x is required");
            }
            string mechanism = Encoding.ASCII.GetString(peer, 12, 20).TrimEnd('\0');
            if (mechanism != "NULL")
            {
                throw Malformed("the server asks for the " + mechanism + " security mechanism; this bridge speaks NULL (loopback) only");
            }
            WriteCommand(ReadyBody(socketType));
            while (true)
            {
                byte flags = ReadByte();
                long size = ReadSize(flags);
                if ((flags & FlagCommand) == 0)
                {
                    throw Malformed("a message arrived before the server's READY");
                }
                byte[] body = ReadCommandBody(size);
                string name = CommandName(body);
                if (name == "READY")
                {
                    string peerType = ReadyProperty(body, "Socket-Type");
                    if (peerType != "ROUTER")
                    {
                        throw Malformed("the server is a " + (peerType ?? "socket with no type") + ", not a ROUTER");
                    }
                    return;
                }
                if (name == "ERROR")
                {
                    throw new ConnectionException(LocalCodes.ConnectFailed, "the server refused the handshake: " + ErrorReason(body));
                }
            }
        }

        /// <summary>Writes one single-frame message.</summary>
        public void WriteMessage(byte[] body)
        {
            WriteFrame(0, body);
        }

        /// <summary>Reads until a message arrives, answering PINGs on the way. Blocks.</summary>
        public ZmtpIncoming ReadMessage(long maxBodyBytes)
        {
            bool isMultipart = false;
            while (true)
            {
                byte flags = ReadByte();
                long size = ReadSize(flags);
                if ((flags & FlagCommand) != 0)
                {
                    HandleCommand(ReadCommandBody(size));
                    continue;
                }
                bool hasMore = (flags & FlagMore) != 0;
                if (isMultipart || hasMore)
                {
                    isMultipart = true;
                    Skip(size);
                    if (!hasMore)
                    {
                        return new ZmtpIncoming { Kind = ZmtpReadKind.Multipart, NumBytes = size };
                    }
                    continue;
                }
                if (size > maxBodyBytes)
                {
                    byte[] prefix = ReadExactly((int)Math.Min(size, PeekBytes));
                    Skip(size - prefix.Length);
                    return new ZmtpIncoming { Kind = ZmtpReadKind.Oversized, NumBytes = size, RequestId = MsgPack.PeekString(prefix, "request_id") };
                }
                return new ZmtpIncoming { Kind = ZmtpReadKind.Message, Body = ReadExactly((int)size), NumBytes = size };
            }
        }

        private void HandleCommand(byte[] body)
        {
            string name = CommandName(body);
            if (name == "PING")
            {
                // PING: name, 2-byte TTL, then up to 16 bytes of context that PONG echoes.
                int contextStart = 1 + 4 + 2;
                int contextLength = Math.Max(0, body.Length - contextStart);
                byte[] pong = new byte[1 + 4 + contextLength];
                pong[0] = 4;
                Encoding.ASCII.GetBytes("PONG", 0, 4, pong, 1);
                if (contextLength > 0)
                {
                    Array.Copy(body, contextStart, pong, 5, contextLength);
                }
                // Counted before the write: once the peer has the PONG, the count already says so.
                System.Threading.Interlocked.Increment(ref _numPingsAnswered);
                WriteCommand(pong);
            }
            else if (name == "ERROR")
            {
                throw new ConnectionException(LocalCodes.ConnectionLost, "the server closed the connection: " + ErrorReason(body));
            }
            // PONG and unknown commands need no answer.
        }

        private static byte[] ReadyBody(string socketType)
        {
            MemoryStream body = new MemoryStream();
            body.WriteByte(5);
            body.Write(Encoding.ASCII.GetBytes("READY"), 0, 5);
            byte[] name = Encoding.ASCII.GetBytes("Socket-Type");
            byte[] value = Encoding.ASCII.GetBytes(socketType);
            body.WriteByte((byte)name.Length);
            body.Write(name, 0, name.Length);
            body.Write(BigEndian(value.Length, 4), 0, 4);
            body.Write(value, 0, value.Length);
            return body.ToArray();
        }

        private static string CommandName(byte[] body)
        {
            if (body.Length < 1 || body[0] + 1 > body.Length)
            {
                throw Malformed("a command frame has no readable name");
            }
            return Encoding.ASCII.GetString(body, 1, body[0]);
        }

        private static string ReadyProperty(byte[] body, string wanted)
        {
            int position = 1 + body[0];
            while (position < body.Length)
            {
                int nameLength = body[position];
                if (position + 1 + nameLength + 4 > body.Length)
                {
                    throw Malformed("a READY property is cut short");
                }
                string name = Encoding.ASCII.GetString(body, position + 1, nameLength);
                position += 1 + nameLength;
                long valueLength = ((long)body[position] << 24) | ((long)body[position + 1] << 16) | ((long)body[position + 2] << 8) | body[position + 3];
                position += 4;
                if (valueLength > body.Length - position)
                {
                    throw Malformed("a READY property value is cut short");
                }
                if (string.Equals(name, wanted, StringComparison.OrdinalIgnoreCase))
                {
                    return Encoding.ASCII.GetString(body, position, (int)valueLength);
                }
                position += (int)valueLength;
            }
            return null;
        }

        private static string ErrorReason(byte[] body)
        {
            int start = 1 + body[0];
            if (start >= body.Length)
            {
                return "(no reason)";
            }
            int length = Math.Min(body[start], body.Length - start - 1);
            return Encoding.ASCII.GetString(body, start + 1, length);
        }

        private void WriteCommand(byte[] body)
        {
            WriteFrame(FlagCommand, body);
        }

        private void WriteFrame(byte flags, byte[] body)
        {
            bool isLong = body.Length > 255;
            byte[] header = isLong ? new byte[9] : new byte[2];
            header[0] = (byte)(flags | (isLong ? FlagLong : 0));
            if (isLong)
            {
                Array.Copy(BigEndian(body.Length, 8), 0, header, 1, 8);
            }
            else
            {
                header[1] = (byte)body.Length;
            }
            lock (_writeLock)
            {
                _stream.Write(header, 0, header.Length);
                _stream.Write(body, 0, body.Length);
                _stream.Flush();
            }
        }

        private long ReadSize(byte flags)
        {
            if ((flags & 0xf8) != 0)
            {
                throw Malformed(string.Format("frame flags 0x{0:x2} use reserved bits", flags));
            }
            if ((flags & FlagLong) == 0)
            {
                return ReadByte();
            }
            byte[] size = ReadExactly(8);
            long value = 0;
            for (int i = 0; i < 8; i++)
            {
                value = (value << 8) | size[i];
            }
            if (value < 0)
            {
                throw Malformed("a frame claims a negative size");
            }
            return value;
        }

        private byte[] ReadCommandBody(long size)
        {
            if (size > MaxCommandBytes)
            {
                throw Malformed("a command frame of " + size + " bytes is too large");
            }
            return ReadExactly((int)size);
        }

        private byte ReadByte()
        {
            int value = _stream.ReadByte();
            if (value < 0)
            {
                throw new EndOfStreamException("the server closed the connection");
            }
            return (byte)value;
        }

        private byte[] ReadExactly(int count)
        {
            byte[] buffer = new byte[count];
            int offset = 0;
            while (offset < count)
            {
                int read = _stream.Read(buffer, offset, count - offset);
                if (read <= 0)
                {
                    throw new EndOfStreamException("the server closed the connection");
                }
                offset += read;
            }
            return buffer;
        }

        private void Skip(long count)
        {
            byte[] scratch = new byte[(int)Math.Min(count, 64 << 10)];
            while (count > 0)
            {
                int read = _stream.Read(scratch, 0, (int)Math.Min(count, scratch.Length));
                if (read <= 0)
                {
                    throw new EndOfStreamException("the server closed the connection");
                }
                count -= read;
            }
        }

        private static byte[] BigEndian(long value, int numBytes)
        {
            byte[] bytes = new byte[numBytes];
            for (int i = numBytes - 1; i >= 0; i--)
            {
                bytes[i] = (byte)value;
                value >>= 8;
            }
            return bytes;
        }

        private static ProtocolViolationException Malformed(string message)
        {
            return new ProtocolViolationException(LocalCodes.MalformedFrame, message);
        }
    }
}
