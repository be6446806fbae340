using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Net.Sockets;
using System.Threading;
using NUnit.Framework;

namespace NpcEngine.Tests
{
    /// <summary>The client against a scripted peer: heartbeats, malformed input, another version, no server.</summary>
    [TestFixture]
    public class ZmtpTests
    {
        internal static NpcClient Connect(FakeServer fake, out NetworkStream stream, List<NpcEngineException> errors)
        {
            NpcClient client = new NpcClient(new NpcClientOptions { Endpoint = fake.Endpoint, RequestTimeout = TimeSpan.FromSeconds(10), MinReconnectDelay = TimeSpan.FromMilliseconds(50) });
            client.Error += delegate(NpcEngineException error) { lock (errors) { errors.Add(error); } };
            stream = fake.Accept(TimeSpan.FromSeconds(10));
            return client;
        }

        private static void Reply(NetworkStream stream, string requestId, PackMap result)
        {
            PackMap reply = new PackMap { { "type", "reply" }, { "protocol_version", "1.0" }, { "request_id", requestId }, { "op", "x" }, { "ok", true }, { "result", result } };
            FakeServer.WriteFrame(stream, 0, MsgPack.Encode(reply));
        }

        internal static bool WaitFor(Func<bool> condition, double seconds)
        {
            Stopwatch waited = Stopwatch.StartNew();
            while (!condition())
            {
                if (waited.Elapsed.TotalSeconds > seconds)
                {
                    return false;
                }
                Thread.Sleep(20);
            }
            return true;
        }

        [Test]
        public void PingIsAnsweredWithPongCarryingItsContext()
        {
            List<NpcEngineException> errors = new List<NpcEngineException>();
            using (FakeServer fake = new FakeServer())
            {
                NetworkStream stream;
                using (NpcClient client = Connect(fake, out stream, errors))
                {
                    byte[] ping = { 4, (byte)'P', (byte)'I', (byte)'N', (byte)'G', 0, 50, 0xca, 0xfe };
                    FakeServer.WriteFrame(stream, 0x04, ping);
                    byte flags;
                    byte[] pong = FakeServer.ReadFrame(stream, out flags);
                    Assert.AreEqual(0x04, flags, "PONG is a command frame");
                    CollectionAssert.AreEqual(new byte[] { 4, (byte)'P', (byte)'O', (byte)'N', (byte)'G', 0xca, 0xfe }, pong);
                    Assert.AreEqual(1, client.NumPingsAnswered);
                }
            }
            Assert.AreEqual(0, errors.Count);
        }

        [Test]
        public void LongFramesAndRepliesRoundTrip()
        {
            List<NpcEngineException> errors = new List<NpcEngineException>();
            using (FakeServer fake = new FakeServer())
            {
                NetworkStream stream;
                using (NpcClient client = Connect(fake, out stream, errors))
                {
                    string big = new string('w', 5000);
                    var call = client.RequestAsync("world.set", new PackMap { { "key", "k" }, { "text", big } });
                    PackMap request = FakeServer.ReadRequest(stream);
                    Assert.AreEqual(big, request.GetString("text"));
                    Assert.AreEqual(Protocol.Version, request.GetString("protocol_version"));
                    Reply(stream, request.GetString("request_id"), new PackMap { { "echo", big } });
                    Assert.IsTrue(call.Wait(10000));
                    Assert.AreEqual(big, call.Result.GetString("echo"));
                }
            }
        }

        [Test]
        public void MalformedFramesAreErrorsAndTheClientRecovers()
        {
            List<NpcEngineException> errors = new List<NpcEngineException>();
            using (FakeServer fake = new FakeServer())
            {
                NetworkStream stream;
                using (NpcClient client = Connect(fake, out stream, errors))
                {
                    // A body that is not msgpack: an error event, the connection stays.
                    FakeServer.WriteFrame(stream, 0, new byte[] { 0xc1 });
                    // A multi-frame message: skipped with an error event.
                    FakeServer.WriteFrame(stream, 0x01, MsgPack.Encode(new PackMap()));
                    FakeServer.WriteFrame(stream, 0, MsgPack.Encode(new PackMap()));
                    Assert.IsTrue(WaitFor(delegate { lock (errors) { return errors.Count >= 2; } }, 10), "two error events");
                    Assert.AreEqual(LocalCodes.BadMessage, errors[0].Code);
                    Assert.AreEqual(LocalCodes.MalformedFrame, errors[1].Code);
                    var ping = client.PingAsync();
                    PackMap request = FakeServer.ReadRequest(stream);
                    Reply(stream, request.GetString("request_id"), new PackMap { { "server_time_ms", 7L } });
                    Assert.IsTrue(ping.Wait(10000));
                    Assert.AreEqual(7L, ping.Result);
                    Assert.AreEqual(1, client.NumConnects);

                    // Reserved flag bits: the stream cannot be trusted; the client drops it and reconnects.
                    var lost = client.PingAsync();
                    FakeServer.ReadRequest(stream);
                    stream.WriteByte(0xf0);
                    stream.WriteByte(0);
                    NpcEngineException failure = Unwrap(Assert.Throws<AggregateException>(delegate { lost.Wait(10000); }));
                    Assert.AreEqual(LocalCodes.ConnectionLost, failure.Code, "the request in flight fails, it does not hang");
                    NetworkStream second = fake.Accept(TimeSpan.FromSeconds(10));
                    Assert.IsTrue(WaitFor(delegate { return client.NumConnects == 2; }, 10));
                    var again = client.PingAsync();
                    PackMap next = FakeServer.ReadRequest(second);
                    Reply(second, next.GetString("request_id"), new PackMap { { "server_time_ms", 8L } });
                    Assert.IsTrue(again.Wait(10000));
                    Assert.IsTrue(errors.Exists(delegate(NpcEngineException e) { return e.Code == LocalCodes.MalformedFrame && e.Message.Contains("reserved"); }));
                }
            }
        }

        [Test]
        public void HelloRefusesAnotherProtocolMajor()
        {
            List<NpcEngineException> errors = new List<NpcEngineException>();
            using (FakeServer fake = new FakeServer())
            {
                NetworkStream stream;
                using (NpcClient client = Connect(fake, out stream, errors))
                {
                    var hello = client.HelloAsync();
                    PackMap request = FakeServer.ReadRequest(stream);
                    Assert.AreEqual("hello", request.GetString("op"));
                    Reply(stream, request.GetString("request_id"), new PackMap { { "protocol_version", "2.0" }, { "server", "npc-engine" } });
                    NpcEngineException error = Unwrap(Assert.Throws<AggregateException>(delegate { hello.Wait(10000); }));
                    Assert.IsInstanceOf<VersionMismatchException>(error);
                    StringAssert.Contains("2.0", error.Message);
                }
            }
        }

        [Test]
        public void NoServerMeansErrorsAndACleanDispose()
        {
            List<NpcEngineException> errors = new List<NpcEngineException>();
            string endpoint = "tcp://127.0.0.1:" + TestEnvironment.FreePort();
            NpcClient client = new NpcClient(new NpcClientOptions { Endpoint = endpoint, MinReconnectDelay = TimeSpan.FromMilliseconds(50), MaxReconnectDelay = TimeSpan.FromMilliseconds(200) });
            client.Error += delegate(NpcEngineException error) { lock (errors) { errors.Add(error); } };
            var ping = client.PingAsync();
            Assert.IsTrue(WaitFor(delegate { lock (errors) { return errors.Count >= 3; } }, 10), "connect failures are reported, with retries");
            Assert.AreEqual(LocalCodes.ConnectFailed, errors[0].Code);
            StringAssert.Contains(endpoint, errors[0].Message);
            Assert.IsFalse(ping.IsCompleted, "a request waits for the server (up to its timeout)");
            Stopwatch closing = Stopwatch.StartNew();
            client.Dispose();
            Assert.Less(closing.Elapsed.TotalSeconds, 3.0, "Dispose does not hang");
            NpcEngineException error2 = Unwrap(Assert.Throws<AggregateException>(delegate { ping.Wait(5000); }));
            Assert.IsInstanceOf<ClientClosedException>(error2);
            Assert.IsTrue(WaitFor(delegate { return !client.AreThreadsAlive; }, 5), "no thread is left behind");
            Assert.IsInstanceOf<ClientClosedException>(Unwrap(Assert.Throws<AggregateException>(delegate { client.PingAsync().Wait(5000); })));
        }

        [Test]
        public void RequestsTimeOut()
        {
            List<NpcEngineException> errors = new List<NpcEngineException>();
            using (FakeServer fake = new FakeServer())
            {
                NetworkStream stream;
                using (NpcClient client = Connect(fake, out stream, errors))
                {
                    var call = client.RequestAsync("ping", null, TimeSpan.FromMilliseconds(200));
                    NpcEngineException error = Unwrap(Assert.Throws<AggregateException>(delegate { call.Wait(5000); }));
                    Assert.IsInstanceOf<NpcTimeoutException>(error);
                    Assert.AreEqual(0, client.NumOutstanding);
                }
            }
        }

        [Test]
        public void ARequestThatTimedOutBeforeItWasSentNeverRuns()
        {
            List<NpcEngineException> errors = new List<NpcEngineException>();
            using (FakeServer fake = new FakeServer())
            using (NpcClient client = new NpcClient(new NpcClientOptions { Endpoint = fake.Endpoint, RequestTimeout = TimeSpan.FromSeconds(10), MinReconnectDelay = TimeSpan.FromMilliseconds(50) }))
            {
                client.Error += delegate(NpcEngineException raised) { lock (errors) { errors.Add(raised); } };
                // Not connected yet (the server has not accepted): the load waits in the outbox, then times out.
                var load = client.RequestAsync("snapshot.load", new PackMap { { "name", "slot1" } }, TimeSpan.FromMilliseconds(200));
                NpcEngineException error = Unwrap(Assert.Throws<AggregateException>(delegate { load.Wait(5000); }));
                Assert.IsInstanceOf<NpcTimeoutException>(error);
                NetworkStream stream = fake.Accept(TimeSpan.FromSeconds(10));
                var ping = client.RequestAsync("ping");
                List<string> ops = new List<string>();
                while (true)
                {
                    PackMap request = FakeServer.ReadRequest(stream);
                    ops.Add((string)request["op"]);
                    if ((string)request["op"] == "ping")
                    {
                        Reply(stream, (string)request["request_id"], new PackMap { { "server_time_ms", 1L } });
                        break;
                    }
                }
                Assert.IsTrue(ping.Wait(5000), "the ping after it is answered");
                CollectionAssert.DoesNotContain(ops, "snapshot.load", "the game was told the load failed, so it must not run");
            }
        }

        [Test]
        public void BadOptionsAreRefused()
        {
            Assert.Throws<ArgumentException>(delegate { new NpcClient("127.0.0.1:5555"); });
            Assert.Throws<ArgumentException>(delegate { new NpcClient("tcp://127.0.0.1:99999"); });
            Assert.Throws<ArgumentException>(delegate { new NpcClient(new NpcClientOptions { RequestTimeout = TimeSpan.Zero }); });
        }

        internal static NpcEngineException Unwrap(AggregateException error)
        {
            Exception inner = error.GetBaseException();
            Assert.IsInstanceOf<NpcEngineException>(inner, inner.ToString());
            return (NpcEngineException)inner;
        }
    }
}
