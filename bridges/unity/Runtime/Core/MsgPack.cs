using System;
using System.Collections;
using System.Collections.Generic;
using System.IO;
using System.Text;

namespace NpcEngine
{
    /// <summary>What a decoder accepts; every bound protects a game from a hostile or broken peer.</summary>
    public sealed class MsgPackLimits
    {
        public int MaxDepth = 64;
        public int MaxStringBytes = 16 << 20;
        public int MaxArrayLength = 1000000;
        public int MaxMapLength = 100000;

        public static MsgPackLimits Default { get { return new MsgPackLimits(); } }
    }

    /// <summary>
    /// The protocol's msgpack subset (schemas/PROTOCOL.md section 2): nil, bool, int64, float64,
    /// UTF-8 str, array, map with string keys. Encodes the smallest forms, floats as float64;
    /// decodes every standard form; refuses bin, ext, non-string keys and uint64 past int64.
    /// </summary>
    public static class MsgPack
    {
        private static readonly UTF8Encoding StrictUtf8 = new UTF8Encoding(false, true);

        public static byte[] Encode(object value)
        {
            MemoryStream output = new MemoryStream();
            Write(output, value, 0);
            return output.ToArray();
        }

        public static object Decode(byte[] data)
        {
            return Decode(data, MsgPackLimits.Default);
        }

        public static object Decode(byte[] data, MsgPackLimits limits)
        {
            if (data == null)
            {
                throw new ArgumentNullException("data");
            }
            Reader reader = new Reader(data, limits ?? MsgPackLimits.Default);
            object value = reader.ReadValue(0);
            if (reader.Position != data.Length)
            {
                throw new MsgPackException((data.Length - reader.Position) + " bytes after the value");
            }
            return value;
        }

        /// <summary>Decodes a message body, which must be one map.</summary>
        public static PackMap DecodeMap(byte[] data, MsgPackLimits limits)
        {
            PackMap map = Decode(data, limits) as PackMap;
            if (map == null)
            {
                throw new MsgPackException("the message is not a map");
            }
            return map;
        }

        /// <summary>
        /// Reads the leading entries of a map that may be cut short, returning the first string
        /// value under <paramref name="key"/>, or null. Used to name the request of a reply too
        /// large to read whole.
        /// </summary>
        public static string PeekString(byte[] prefix, string key)
        {
            try
            {
                Reader reader = new Reader(prefix, MsgPackLimits.Default);
                int count = reader.ReadMapHeader();
                for (int i = 0; i < count; i++)
                {
                    string name = reader.ReadValue(1) as string;
                    object value = reader.ReadValue(1);
                    if (name == key)
                    {
                        return value as string;
                    }
                }
            }
            catch (MsgPackException)
            {
            }
            return null;
        }

        private const int MaxEncodeDepth = 64;

        private static void Write(Stream output, object value, int depth)
        {
            if (depth > MaxEncodeDepth)
            {
                throw new ArgumentException("value nests deeper than " + MaxEncodeDepth);
            }
            if (value == null)
            {
                output.WriteByte(0xc0);
                return;
            }
            if (value is bool)
            {
                output.WriteByte((bool)value ? (byte)0xc3 : (byte)0xc2);
                return;
            }
            if (value is string)
            {
                WriteString(output, (string)value);
                return;
            }
            if (value is long || value is int || value is short || value is sbyte || value is byte
                || value is ushort || value is uint)
            {
                WriteInt(output, Convert.ToInt64(value));
                return;
            }
            if (value is ulong)
            {
                ulong unsigned = (ulong)value;
                if (unsigned > long.MaxValue)
                {
                    throw new ArgumentException("integers past the int64 range are not in the protocol");
                }
                WriteInt(output, (long)unsigned);
                return;
            }
            if (value is double || value is float)
            {
                output.WriteByte(0xcb);
                WriteBigEndian(output, (ulong)BitConverter.DoubleToInt64Bits(Convert.ToDouble(value)), 8);
                return;
            }
            PackMap map = value as PackMap;
            if (map != null)
            {
                WriteMap(output, map.Count, map, depth);
                return;
            }
            IDictionary dictionary = value as IDictionary;
            if (dictionary != null)
            {
                WriteMap(output, dictionary.Count, StringKeyed(dictionary), depth);
                return;
            }
            IList list = value as IList;
            if (list != null)
            {
                WriteHeader(output, list.Count, 0x90, 0xdc, 0xdd);
                foreach (object item in list)
                {
                    Write(output, item, depth + 1);
                }
                return;
            }
            throw new ArgumentException("cannot encode a " + value.GetType().Name + " (the protocol has nil, bool, int, float, str, array, map)");
        }

        private static void WriteMap(Stream output, int count, IEnumerable<KeyValuePair<string, object>> entries, int depth)
        {
            WriteHeader(output, count, 0x80, 0xde, 0xdf);
            foreach (KeyValuePair<string, object> entry in entries)
            {
                WriteString(output, entry.Key);
                Write(output, entry.Value, depth + 1);
            }
        }

        private static IEnumerable<KeyValuePair<string, object>> StringKeyed(IDictionary dictionary)
        {
            foreach (DictionaryEntry entry in dictionary)
            {
                string key = entry.Key as string;
                if (key == null)
                {
                    throw new ArgumentException("map keys must be strings");
                }
                yield return new KeyValuePair<string, object>(key, entry.Value);
            }
        }

        private static void WriteInt(Stream output, long value)
        {
            if (value >= 0)
            {
                if (value <= 0x7f)
                {
                    output.WriteByte((byte)value);
                }
                else if (value <= 0xff)
                {
                    output.WriteByte(0xcc);
                    output.WriteByte((byte)value);
                }
                else if (value <= 0xffff)
                {
                    output.WriteByte(0xcd);
                    WriteBigEndian(output, (ulong)value, 2);
                }
                else if (value <= 0xffffffffL)
                {
                    output.WriteByte(0xce);
                    WriteBigEndian(output, (ulong)value, 4);
                }
                else
                {
                    output.WriteByte(0xcf);
                    WriteBigEndian(output, (ulong)value, 8);
                }
                return;
            }
            if (value >= -32)
            {
                output.WriteByte((byte)(sbyte)value);
            }
            else if (value >= sbyte.MinValue)
            {
                output.WriteByte(0xd0);
                output.WriteByte((byte)(sbyte)value);
            }
            else if (value >= short.MinValue)
            {
                output.WriteByte(0xd1);
                WriteBigEndian(output, (ulong)value, 2);
            }
            else if (value >= int.MinValue)
            {
                output.WriteByte(0xd2);
                WriteBigEndian(output, (ulong)value, 4);
            }
            else
            {
                output.WriteByte(0xd3);
                WriteBigEndian(output, (ulong)value, 8);
            }
        }

        private static void WriteString(Stream output, string text)
        {
            byte[] bytes = StrictUtf8.GetBytes(text);
            if (bytes.Length <= 31)
            {
                output.WriteByte((byte)(0xa0 | bytes.Length));
            }
            else if (bytes.Length <= 0xff)
            {
                output.WriteByte(0xd9);
                output.WriteByte((byte)bytes.Length);
            }
            else if (bytes.Length <= 0xffff)
            {
                output.WriteByte(0xda);
                WriteBigEndian(output, (ulong)bytes.Length, 2);
            }
            else
            {
                output.WriteByte(0xdb);
                WriteBigEndian(output, (ulong)bytes.Length, 4);
            }
            output.Write(bytes, 0, bytes.Length);
        }

        private static void WriteHeader(Stream output, int count, int fixPrefix, byte code16, byte code32)
        {
            if (count <= 15)
            {
                output.WriteByte((byte)(fixPrefix | count));
            }
            else if (count <= 0xffff)
            {
                output.WriteByte(code16);
                WriteBigEndian(output, (ulong)count, 2);
            }
            else
            {
                output.WriteByte(code32);
                WriteBigEndian(output, (ulong)count, 4);
            }
        }

        private static void WriteBigEndian(Stream output, ulong value, int numBytes)
        {
            for (int shift = (numBytes - 1) * 8; shift >= 0; shift -= 8)
            {
                output.WriteByte((byte)(value >> shift));
            }
        }

        private sealed class Reader
        {
            private readonly byte[] _data;
            private readonly MsgPackLimits _limits;
            public int Position;

            public Reader(byte[] data, MsgPackLimits limits)
            {
                _data = data;
                _limits = limits;
            }

            public int ReadMapHeader()
            {
                byte code = Byte();
                if (code >= 0x80 && code <= 0x8f)
                {
                    return code & 0x0f;
                }
                if (code == 0xde)
                {
                    return (int)Unsigned(2);
                }
                if (code == 0xdf)
                {
                    return Count(Unsigned(4));
                }
                throw new MsgPackException("expected a map");
            }

            public object ReadValue(int depth)
            {
                if (depth > _limits.MaxDepth)
                {
                    throw new MsgPackException("nested deeper than " + _limits.MaxDepth);
                }
                byte code = Byte();
                if (code <= 0x7f)
                {
                    return (long)code;
                }
                if (code >= 0xe0)
                {
                    return (long)(sbyte)code;
                }
                if (code >= 0xa0 && code <= 0xbf)
                {
                    return Str(code & 0x1f);
                }
                if (code >= 0x90 && code <= 0x9f)
                {
                    return Array(code & 0x0f, depth);
                }
                if (code >= 0x80 && code <= 0x8f)
                {
                    return Map(code & 0x0f, depth);
                }
                switch (code)
                {
                    case 0xc0: return null;
                    case 0xc2: return false;
                    case 0xc3: return true;
                    case 0xcc: return (long)Unsigned(1);
                    case 0xcd: return (long)Unsigned(2);
                    case 0xce: return (long)Unsigned(4);
                    case 0xcf:
                        ulong big = Unsigned(8);
                        if (big > long.MaxValue)
                        {
                            throw new MsgPackException("uint64 " + big + " is past the int64 range");
                        }
                        return (long)big;
                    case 0xd0: return (long)(sbyte)Unsigned(1);
                    case 0xd1: return (long)(short)Unsigned(2);
                    case 0xd2: return (long)(int)Unsigned(4);
                    case 0xd3: return (long)Unsigned(8);
                    case 0xca: return (double)BitConverter.ToSingle(BitConverter.GetBytes((int)Unsigned(4)), 0);
                    case 0xcb: return BitConverter.Int64BitsToDouble((long)Unsigned(8));
                    case 0xd9: return Str((int)Unsigned(1));
                    case 0xda: return Str((int)Unsigned(2));
                    case 0xdb: return Str(Count(Unsigned(4)));
                    case 0xdc: return Array((int)Unsigned(2), depth);
                    case 0xdd: return Array(Count(Unsigned(4)), depth);
                    case 0xde: return Map((int)Unsigned(2), depth);
                    case 0xdf: return Map(Count(Unsigned(4)), depth);
                    case 0xc4:
                    case 0xc5:
                    case 0xc6:
                        throw new MsgPackException("bin values are not in the protocol");
                    case 0xc1:
                        throw new MsgPackException("0xc1 is never used in msgpack");
                    default:
                        throw new MsgPackException(string.Format("ext types are not accepted (0x{0:x2})", code));
                }
            }

            private string Str(int numBytes)
            {
                if (numBytes > _limits.MaxStringBytes)
                {
                    throw new MsgPackException("a string of " + numBytes + " bytes is over the limit of " + _limits.MaxStringBytes);
                }
                Need(numBytes);
                string text;
                try
                {
                    text = StrictUtf8.GetString(_data, Position, numBytes);
                }
                catch (ArgumentException)
                {
                    throw new MsgPackException("a string is not valid UTF-8");
                }
                Position += numBytes;
                return text;
            }

            private List<object> Array(int count, int depth)
            {
                if (count > _limits.MaxArrayLength)
                {
                    throw new MsgPackException("an array of " + count + " items is over the limit of " + _limits.MaxArrayLength);
                }
                // Each item takes at least one byte: a count past the data left is a lie.
                Need(count);
                List<object> items = new List<object>(count);
                for (int i = 0; i < count; i++)
                {
                    items.Add(ReadValue(depth + 1));
                }
                return items;
            }

            private PackMap Map(int count, int depth)
            {
                if (count > _limits.MaxMapLength)
                {
                    throw new MsgPackException("a map of " + count + " entries is over the limit of " + _limits.MaxMapLength);
                }
                Need(count * 2);
                PackMap map = new PackMap();
                for (int i = 0; i < count; i++)
                {
                    string key = ReadValue(depth + 1) as string;
                    if (key == null)
                    {
                        throw new MsgPackException("map keys must be strings");
                    }
                    map[key] = ReadValue(depth + 1);
                }
                return map;
            }

            private static int Count(ulong count)
            {
                if (count > int.MaxValue)
                {
                    throw new MsgPackException("a length of " + count + " is too large");
                }
                return (int)count;
            }

            private byte Byte()
            {
                Need(1);
                return _data[Position++];
            }

            private ulong Unsigned(int numBytes)
            {
                Need(numBytes);
                ulong value = 0;
                for (int i = 0; i < numBytes; i++)
                {
                    value = (value << 8) | _data[Position++];
                }
                return value;
            }

            private void Need(long numBytes)
            {
                if (numBytes > _data.Length - Position)
                {
                    throw new MsgPackException("truncated: needs " + numBytes + " more bytes, " + (_data.Length - Position) + " left");
                }
            }
        }
    }
}
