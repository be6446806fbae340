using System;
using System.Collections.Generic;
using System.IO;
using System.Text;
using NUnit.Framework;

namespace NpcEngine.Tests
{
    /// <summary>The C# codec against the shared vectors in schemas/vectors/, and its refusals.</summary>
    [TestFixture]
    public class CodecTests
    {
        [Test]
        public void EveryCodecVectorRoundTrips()
        {
            Assert.AreEqual(0, CheckVectors("codec.json", 50), "see the failures above");
        }

        [Test]
        public void EveryMessageVectorRoundTrips()
        {
            Assert.AreEqual(0, CheckVectors("messages.json", 10), "see the failures above");
        }

        [Test]
        public void MessageVectorsReadAsTypedResults()
        {
            PackMap vectors = LoadVectors("messages.json");
            PackMap say = Decoded(vectors, "reply say").GetMap("result");
            SayResult result = SayResult.FromMap(say, "r4");
            Assert.AreEqual("brom", result.CharacterId);
            Assert.AreEqual(FinishReasons.Complete, result.FinishReason);
            Assert.IsNotNull(result.GetText("say"));
            Assert.IsTrue(result.Changes.Count > 0, "the vector's reply lists state changes");
            Draft draft = Draft.FromEvent(Decoded(vectors, "event draft"));
            Assert.AreEqual("r4", draft.RequestId);
            Assert.IsTrue(draft.NumSteps > 0);
            ServerException busy = NpcClient.ToServerError(Decoded(vectors, "reply error busy").GetMap("error"), "r6");
            Assert.IsInstanceOf<BusyException>(busy);
            Assert.AreEqual("busy", busy.Code);
        }

        [Test]
        public void RefusesWhatTheProtocolDoesNotCarry()
        {
            string[] bad =
            {
                "", "c1", "c4016100", "d40100", "c70100", "81 01 01", "92 01", "a3 6162", "cf ffffffffffffffff",
                "a2 c328", "dd ffffffff", "01 02",
            };
            foreach (string hex in bad)
            {
                Assert.Throws<MsgPackException>(delegate { MsgPack.Decode(FromHex(hex)); }, "accepted " + hex);
            }
        }

        [Test]
        public void DecoderLimitsHold()
        {
            MsgPackLimits limits = new MsgPackLimits { MaxDepth = 3, MaxStringBytes = 4, MaxArrayLength = 2, MaxMapLength = 1 };
            Assert.Throws<MsgPackException>(delegate { MsgPack.Decode(FromHex("91919191 01"), limits); });
            Assert.Throws<MsgPackException>(delegate { MsgPack.Decode(FromHex("a5 6162636465"), limits); });
            Assert.Throws<MsgPackException>(delegate { MsgPack.Decode(FromHex("93 010203"), limits); });
            Assert.Throws<MsgPackException>(delegate { MsgPack.Decode(FromHex("82 a16101 a16201"), limits); });
            Assert.AreEqual(2L, ((List<object>)MsgPack.Decode(FromHex("92 0102"), limits))[1]);
        }

        [Test]
        public void EncoderRefusesValuesOutsideTheProtocol()
        {
            Assert.Throws<ArgumentException>(delegate { MsgPack.Encode(new byte[] { 1 }.GetEnumerator()); });
            Assert.Throws<ArgumentException>(delegate { MsgPack.Encode(ulong.MaxValue); });
            Dictionary<int, int> intKeys = new Dictionary<int, int> { { 1, 2 } };
            Assert.Throws<ArgumentException>(delegate { MsgPack.Encode(intKeys); });
            Assert.AreEqual("cb3ff8000000000000", ToHex(MsgPack.Encode(1.5f)), "floats go out as float64");
        }

        [Test]
        public void PeekFindsTheRequestIdOfACutMessage()
        {
            PackMap reply = new PackMap { { "type", "reply" }, { "protocol_version", "1.0" }, { "request_id", "abc-7" }, { "result", new string('x', 400) } };
            byte[] whole = MsgPack.Encode(reply);
            byte[] prefix = new byte[60];
            Array.Copy(whole, prefix, prefix.Length);
            Assert.AreEqual("abc-7", MsgPack.PeekString(prefix, "request_id"));
            Assert.IsNull(MsgPack.PeekString(FromHex("c1"), "request_id"));
        }

        [Test]
        public void JsonReaderKeepsTypesAndOrder()
        {
            PackMap map = (PackMap)Json.Parse("{\"b\": 1, \"a\": [1.5, \"x\\u00e9\\n\", true, null], \"c\": -9223372036854775808}");
            CollectionAssert.AreEqual(new[] { "b", "a", "c" }, map.Keys);
            Assert.AreEqual(1L, map["b"]);
            List<object> items = map.GetList("a");
            Assert.AreEqual(1.5, items[0]);
            Assert.AreEqual("x\u00e9\n", items[1]);
            Assert.AreEqual(long.MinValue, map["c"]);
            foreach (string bad in new[] { "{", "[1,]", "{\"a\" 1}", "tru", "\"a", "1 2", "{1: 2}" })
            {
                Assert.Throws<FormatException>(delegate { Json.Parse(bad); }, "accepted " + bad);
            }
        }

        [Test]
        public void TemplateFileParses()
        {
            string path = Path.Combine(Path.Combine(TestEnvironment.SchemasDir, "templates"), "shopkeeper_reply.json");
            PackMap template = (PackMap)Json.Parse(File.ReadAllText(path));
            Assert.AreEqual("shopkeeper_reply", template.GetString("name"));
            Assert.AreEqual(5, template.GetList("slots").Count);
        }

        // -- helpers --------------------------------------------------------------------------------

        internal static PackMap LoadVectors(string file)
        {
            string path = Path.Combine(Path.Combine(TestEnvironment.SchemasDir, "vectors"), file);
            object parsed = Json.Parse(File.ReadAllText(path, Encoding.UTF8));
            PackMap byName = new PackMap();
            foreach (object item in (List<object>)parsed)
            {
                PackMap vector = (PackMap)item;
                byName[vector.GetString("name")] = vector;
            }
            return byName;
        }

        private static PackMap Decoded(PackMap vectors, string name)
        {
            return (PackMap)MsgPack.Decode(FromHex(((PackMap)vectors[name]).GetString("msgpack_hex")));
        }

        private static int CheckVectors(string file, int minCount)
        {
            PackMap vectors = LoadVectors(file);
            Assert.GreaterOrEqual(vectors.Count, minCount, file + " has fewer vectors than expected");
            int numFailures = 0;
            foreach (KeyValuePair<string, object> entry in vectors)
            {
                PackMap vector = (PackMap)entry.Value;
                byte[] bytes = FromHex(vector.GetString("msgpack_hex"));
                object expected = FromTyped(vector["typed"]);
                string problem = null;
                try
                {
                    object decoded = MsgPack.Decode(bytes);
                    if (!DeepEquals(expected, decoded))
                    {
                        problem = "decoded to a different value";
                    }
                    else if (!vector.GetBool("decode_only") && ToHex(MsgPack.Encode(expected)) != ToHex(bytes))
                    {
                        problem = "encoded to " + Shorten(ToHex(MsgPack.Encode(expected)));
                    }
                }
                catch (Exception error)
                {
                    problem = error.GetType().Name + ": " + error.Message;
                }
                if (problem != null)
                {
                    numFailures++;
                    Console.WriteLine("  vector '" + entry.Key + "' (" + file + "): " + problem);
                }
            }
            return numFailures;
        }

        /// <summary>The vector's "typed" spelling to a protocol value: {"int": 1}, {"float": 1.0}, {"map": [[k, typed]...]}...</summary>
        internal static object FromTyped(object typed)
        {
            PackMap spec = (PackMap)typed;
            string kind = spec.Keys[0];
            object value = spec[kind];
            switch (kind)
            {
                case "nil": return null;
                case "bool": return (bool)value;
                case "int": return (long)value;
                case "float":
                    string bits = spec.GetString("bits");
                    if (bits != null)
                    {
                        return BitConverter.Int64BitsToDouble(Convert.ToInt64(bits, 16));
                    }
                    return value is long ? (double)(long)value : (double)value;
                case "str": return (string)value;
                case "array":
                    List<object> items = new List<object>();
                    foreach (object item in (List<object>)value)
                    {
                        items.Add(FromTyped(item));
                    }
                    return items;
                case "map":
                    PackMap map = new PackMap();
                    foreach (object pair in (List<object>)value)
                    {
                        List<object> keyValue = (List<object>)pair;
                        map[(string)keyValue[0]] = FromTyped(keyValue[1]);
                    }
                    return map;
                default:
                    throw new ArgumentException("unknown typed kind " + kind);
            }
        }

        internal static bool DeepEquals(object expected, object actual)
        {
            if (expected == null || actual == null)
            {
                return expected == null && actual == null;
            }
            if (expected.GetType() != actual.GetType())
            {
                return false;
            }
            PackMap expectedMap = expected as PackMap;
            if (expectedMap != null)
            {
                PackMap actualMap = (PackMap)actual;
                if (expectedMap.Count != actualMap.Count)
                {
                    return false;
                }
                for (int i = 0; i < expectedMap.Count; i++)
                {
                    string key = expectedMap.Keys[i];
                    if (actualMap.Keys[i] != key || !DeepEquals(expectedMap[key], actualMap[key]))
                    {
                        return false;
                    }
                }
                return true;
            }
            List<object> expectedList = expected as List<object>;
            if (expectedList != null)
            {
                List<object> actualList = (List<object>)actual;
                if (expectedList.Count != actualList.Count)
                {
                    return false;
                }
                for (int i = 0; i < expectedList.Count; i++)
                {
                    if (!DeepEquals(expectedList[i], actualList[i]))
                    {
                        return false;
                    }
                }
                return true;
            }
            return expected.Equals(actual);
        }

        internal static byte[] FromHex(string hex)
        {
            hex = hex.Replace(" ", "");
            byte[] bytes = new byte[hex.Length / 2];
            for (int i = 0; i < bytes.Length; i++)
            {
                bytes[i] = Convert.ToByte(hex.Substring(2 * i, 2), 16);
            }
            return bytes;
        }

        internal static string ToHex(byte[] bytes)
        {
            return BitConverter.ToString(bytes).Replace("-", "").ToLowerInvariant();
        }

        private static string Shorten(string text)
        {
            return text.Length > 80 ? text.Substring(0, 80) + "..." : text;
        }
    }
}
