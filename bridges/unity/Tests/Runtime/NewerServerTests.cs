using System;
using System.Collections.Generic;
using System.Net.Sockets;
using System.Threading;
using NUnit.Framework;

namespace NpcEngine.Tests
{
    /// <summary>
    /// A newer minor server may add fields and event kinds (a minor only adds): this client reads
    /// what it knows and ignores the rest. A draft callback that throws fails only its say. Handlers
    /// subscribed before Start() see the first Connected, however fast the handshake.
    /// </summary>
    [TestFixture]
    public class NewerServerTests
    {
        private static readonly PackMap Added = new PackMap { { "note", "a field this client has never heard of" }, { "count", 3L } };

        private static void Send(NetworkStream stream, PackMap message)
        {
            FakeServer.WriteFrame(stream, 0, MsgPack.Encode(message));
        }

        [Test]
        public void FieldsAndEventKindsOfANewerMinorAreIgnored()
        {
            List<NpcEngineException> errors = new List<NpcEngineException>();
            List<Draft> drafts = new List<Draft>();
            using (FakeServer fake = new FakeServer())
            {
                NetworkStream stream;
                using (NpcClient client = ZmtpTests.Connect(fake, out stream, errors))
                {
                    SayRequest say = client.Say("brom", "player", "Hi", "shopkeeper_reply", new SayOptions { OnDraft = delegate(Draft d) { lock (drafts) { drafts.Add(d); } } });
                    string id = FakeServer.ReadRequest(stream).GetString("request_id");
                    Send(stream, new PackMap { { "type", "event" }, { "event", "thought" }, { "protocol_version", "1.4" }, { "request_id", id }, { "thought", new PackMap { { "text", "hmm" } } } });
                    Send(stream, new PackMap
                    {
                        { "type", "event" }, { "event", "draft" }, { "protocol_version", "1.4" }, { "request_id", id }, { "added_in_1_4", Added },
                        { "draft", new PackMap { { "fields", new PackMap { { "say", "Wel" } } }, { "num_steps", 1L }, { "added_in_1_4", Added } } },
                    });
                    Send(stream, new PackMap { { "type", "notice" }, { "protocol_version", "1.4" }, { "text", "a message type from the future" } });
                    PackMap change = new PackMap { { "kind", "mood" }, { "slot", "emotion" }, { "path", "mood" }, { "old", "neutral" }, { "new", "glad" }, { "added_in_1_4", Added } };
                    PackMap result = new PackMap
                    {
                        { "character_id", "brom" }, { "speaker_id", "player" }, { "finish_reason", "complete" },
                        { "fields", new PackMap { { "say", "Welcome." }, { "emotion", "glad" } } }, { "changes", new List<object> { change } },
                        { "seed", 7L }, { "num_steps", 3L }, { "elapsed_ms", 12.5 }, { "num_prompt_tokens", 40L }, { "num_cached_prompt_tokens", 0L },
                        { "added_in_1_4", Added },
                    };
                    Send(stream, new PackMap { { "type", "reply" }, { "protocol_version", "1.4" }, { "request_id", id }, { "op", "say" }, { "ok", true }, { "result", result }, { "added_in_1_4", Added } });
                    Assert.IsTrue(say.Task.Wait(10000));
                    SayResult reply = say.Task.Result;
                    Assert.AreEqual("Welcome.", reply.GetText("say"));
                    Assert.AreEqual(FinishReasons.Complete, reply.FinishReason);
                    Assert.AreEqual(1, reply.Changes.Count);
                    Assert.AreEqual("glad", reply.Changes[0].New);
                    Assert.AreEqual(7L, reply.Seed);
                    lock (drafts)
                    {
                        Assert.AreEqual(1, drafts.Count, "only the draft event is a draft");
                        Assert.AreEqual("Wel", drafts[0].Fields.GetString("say"));
                    }
                }
            }
            Assert.AreEqual(0, errors.Count, errors.Count > 0 ? errors[0].Message : "");
        }

        [Test]
        public void ADraftCallbackThatThrowsFailsOnlyItsSay()
        {
            List<NpcEngineException> errors = new List<NpcEngineException>();
            using (FakeServer fake = new FakeServer())
            {
                NetworkStream stream;
                using (NpcClient client = ZmtpTests.Connect(fake, out stream, errors))
                {
                    SayRequest say = client.Say("brom", "player", "Hi", "shopkeeper_reply", new SayOptions { OnDraft = delegate(Draft d) { throw new InvalidOperationException("game bug"); } });
                    string id = FakeServer.ReadRequest(stream).GetString("request_id");
                    Send(stream, new PackMap { { "type", "event" }, { "event", "draft" }, { "protocol_version", "1.0" }, { "request_id", id }, { "draft", new PackMap { { "fields", new PackMap() }, { "num_steps", 1L } } } });
                    AggregateException failed = Assert.Throws<AggregateException>(delegate { say.Task.Wait(10000); });
                    NpcEngineException error = (NpcEngineException)failed.InnerException;
                    Assert.AreEqual(LocalCodes.CallbackFailed, error.Code);
                    StringAssert.Contains("game bug", error.Message);
                    PackMap cancel = FakeServer.ReadRequest(stream);
                    Assert.AreEqual("cancel", cancel.GetString("op"));
                    Assert.AreEqual(id, cancel.GetString("target_request_id"));
                    Assert.AreEqual(0, client.NumOutstanding, "the failed say is not left pending");
                    // The IO thread lives on: the next request is answered.
                    var ping = client.PingAsync();
                    PackMap request = FakeServer.ReadRequest(stream);
                    Send(stream, new PackMap { { "type", "reply" }, { "protocol_version", "1.0" }, { "request_id", request.GetString("request_id") }, { "op", "ping" }, { "ok", true }, { "result", new PackMap { { "server_time_ms", 5L } } } });
                    Assert.IsTrue(ping.Wait(10000));
                    Assert.AreEqual(5L, ping.Result);
                }
            }
        }

        [Test]
        public void HandlersSubscribedBeforeStartSeeTheFirstConnect()
        {
            using (FakeServer fake = new FakeServer())
            {
                int numConnected = 0;
                using (NpcClient client = new NpcClient(new NpcClientOptions { Endpoint = fake.Endpoint }, start: false))
                {
                    Thread.Sleep(200);
                    Assert.IsFalse(client.IsStarted);
                    Assert.AreEqual(0, client.NumConnects, "nothing connects before Start()");
                    client.Connected += delegate { Interlocked.Increment(ref numConnected); };
                    client.Start();
                    client.Start();  // once only
                    fake.Accept(TimeSpan.FromSeconds(10));
                    Assert.IsTrue(ZmtpTests.WaitFor(() => Volatile.Read(ref numConnected) == 1, 10), "Connected fired for the first handshake");
                    Assert.AreEqual(1, client.NumConnects);
                }
            }
        }
    }
}
