using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Threading;
using System.Threading.Tasks;
using NUnit.Framework;

namespace NpcEngine.Tests
{
    /// <summary>The client against a real `npc-engine serve` (tiny model) on loopback.</summary>
    [TestFixture]
    public class LiveServerTests
    {
        private const string Template = "shopkeeper_reply";
        // Generous: a loaded 2-core CI machine can take a minute or more to restart the server.
        private static readonly TimeSpan Wait = TimeSpan.FromSeconds(240);

        private NpcClient _client;
        private readonly List<NpcEngineException> _errors = new List<NpcEngineException>();

        [SetUp]
        public void SetUp()
        {
            _errors.Clear();
            _client = NewClient(new NpcClientOptions());
            Result(_client.UpsertSpeakerAsync("player", "Aria"));
            Result(_client.UpsertCharacterAsync(new Character { Id = "brom", Name = "Brom", Persona = "A gruff smith of Thornvale." }));
        }

        [TearDown]
        public void TearDown()
        {
            _client.Dispose();
        }

        private NpcClient NewClient(NpcClientOptions options)
        {
            options.Endpoint = TestEnvironment.Endpoint;
            options.RequestTimeout = Wait;
            options.MinReconnectDelay = TimeSpan.FromMilliseconds(50);
            options.MaxReconnectDelay = TimeSpan.FromMilliseconds(500);
            NpcClient client = new NpcClient(options);
            client.Error += delegate(NpcEngineException error) { lock (_errors) { _errors.Add(error); } };
            return client;
        }

        private static T Result<T>(Task<T> task)
        {
            if (!task.Wait(Wait))
            {
                Assert.Fail("no result within " + Wait.TotalSeconds + " s");
            }
            return task.Result;
        }

        private static void Done(Task task)
        {
            if (!task.Wait(Wait))
            {
                Assert.Fail("no result within " + Wait.TotalSeconds + " s");
            }
        }

        private static NpcEngineException Failure(Task task)
        {
            return ZmtpTests.Unwrap(Assert.Throws<AggregateException>(delegate { task.Wait(Wait); }));
        }

        [Test]
        public void HelloChecksTheVersionAndDescribesTheServer()
        {
            HelloResult hello = Result(_client.HelloAsync());
            Assert.AreEqual(Protocol.Version, hello.ProtocolVersion);
            Assert.AreEqual("npc-engine", hello.Server);
            Assert.Greater(hello.Model.NumParameters, 0);
            CollectionAssert.Contains(hello.Ops, "say");
            Assert.Greater(hello.Limits.GetLong("max_message_bytes"), 0);
            Assert.Greater(Result(_client.PingAsync()), 0);
        }

        [Test]
        public void CharactersSpeakersAndWorld()
        {
            Character stored = Result(_client.UpsertCharacterAsync(new Character
            {
                Id = "mira", Name = "Mira", Persona = "A herbalist.", Knowledge = new List<string> { "The bridge is out." },
                Flags = new PackMap { { "met_player", true }, { "coins", 12L }, { "title", "healer" } },
            }));
            Assert.AreEqual("Mira", stored.Name);
            Result(_client.UpsertCharacterAsync(new PackMap { { "id", "mira" }, { "mood", "happy" } }));
            Character mira = Result(_client.GetCharacterAsync("mira"));
            Assert.AreEqual("A herbalist.", mira.Persona, "fields left out keep their values");
            Assert.AreEqual("happy", mira.Mood);
            Assert.AreEqual(12L, mira.Flags["coins"]);
            CollectionAssert.Contains(Result(_client.ListCharactersAsync()), "mira");
            Assert.IsTrue(Result(_client.ListSpeakersAsync()).Exists(delegate(Speaker s) { return s.Id == "player" && s.Name == "Aria"; }));
            Done(_client.DeleteCharacterAsync("mira"));
            Assert.AreEqual("unknown_character", Failure(_client.GetCharacterAsync("mira")).Code);

            Assert.AreEqual(0.9, Result(_client.SetWorldFactAsync("bridge", "The north bridge is out.", 0.9)).Salience);
            Assert.AreEqual("The north bridge is out.", Result(_client.GetWorldFactsAsync("bridge"))[0].Text);
            Assert.IsTrue(Result(_client.DeleteWorldFactAsync("bridge")));
            Assert.AreEqual(0, Result(_client.GetWorldFactsAsync("bridge")).Count);
            Assert.IsTrue(Result(_client.UpsertSpeakerAsync("guard", "Guard")) != null);
            Assert.IsTrue(Result(_client.DeleteSpeakerAsync("guard")));
        }

        [Test]
        public void TemplatesRegisterAndList()
        {
            string json = "{\"name\": \"yes_no\", \"slots\": [{\"name\": \"answer\", \"kind\": \"boolean\"}, {\"name\": \"say\", \"kind\": \"text\", \"max_tokens\": 8}], \"line_slot\": \"say\"}";
            Assert.AreEqual("yes_no", Result(_client.RegisterTemplateJsonAsync(json)));
            List<string> names = new List<string>();
            foreach (PackMap template in Result(_client.ListTemplatesAsync()))
            {
                names.Add(template.GetString("name"));
            }
            CollectionAssert.IsSubsetOf(new[] { "yes_no", Template }, names);
            ServerException bad = (ServerException)Failure(_client.RegisterTemplateJsonAsync("{\"name\": \"broken\", \"slots\": []}"));
            Assert.AreEqual("invalid_template", bad.Code);
        }

        [Test]
        public void APatternLineTakesTheSaysValues()
        {
            string json = "{\"name\": \"pattern_greeting\", \"slots\": [{\"name\": \"say\", \"kind\": \"text\", \"max_tokens\": 16, "
                + "\"pattern\": \"(Hello|Bah), {player}\\\\. I have {item}\\\\.\"}, {\"name\": \"give_item\", \"kind\": \"choice\", \"options\": [\"nothing\"]}]}";
            Assert.AreEqual("pattern_greeting", Result(_client.RegisterTemplateJsonAsync(json)));
            List<Draft> drafts = new List<Draft>();
            SayResult result = Result(_client.SayAsync("brom", "player", "Hello?", "pattern_greeting", new SayOptions
            {
                Seed = 4,
                Values = new Dictionary<string, string> { { "item", "rope" } },
                Options = new Dictionary<string, List<string>> { { "give_item", new List<string> { "rope", "nails" } } },
                OnDraft = delegate(Draft draft) { lock (drafts) { drafts.Add(draft); } },
            }));
            StringAssert.IsMatch("^(Hello|Bah), Aria\\. I have rope\\.$", result.GetText("say"));
            StringAssert.IsMatch("^(rope|nails)$", result.GetText("give_item"));
            lock (drafts)
            {
                foreach (Draft draft in drafts)
                {
                    StringAssert.IsMatch("^(Hello|Bah), Aria\\. I have rope\\.$", draft.Fields.GetString("say"));
                }
            }
            ServerException missing = (ServerException)Failure(_client.SayAsync("brom", "player", "Hello?", "pattern_greeting"));
            Assert.AreEqual("invalid_template", missing.Code);
            StringAssert.Contains("{item}", missing.Message);
        }

        [Test]
        public void SayStreamsDraftsThenTheLineAndChangesState()
        {
            List<Draft> drafts = new List<Draft>();
            SayRequest request = _client.Say("brom", "player", "Any work for me?", Template, new SayOptions
            {
                Seed = 3,
                OnDraft = delegate(Draft draft) { lock (drafts) { drafts.Add(draft); } },
            });
            SayResult result = Result(request.Task);
            Assert.AreEqual(FinishReasons.Complete, result.FinishReason);
            Assert.AreEqual(request.RequestId, result.RequestId);
            Assert.IsNotNull(result.GetText("say"));
            StringAssert.IsMatch("^(happy|angry|afraid|sad|curious|neutral|suspicious)$", result.GetText("emotion"));
            Assert.IsTrue(result.Fields.GetOrNull("trust_delta") is long, "trust_delta is an integer: " + result.Fields.GetOrNull("trust_delta"));
            Assert.Greater(drafts.Count, 0, "stream=true sends drafts");
            Assert.LessOrEqual(drafts[drafts.Count - 1].NumSteps, result.NumSteps);
            Assert.IsTrue(result.Changes.Exists(delegate(StateChange c) { return c.Kind == "mood"; }), "changes: " + string.Join(", ", result.Changes.ConvertAll(delegate(StateChange c) { return c.Kind + " " + c.Path; }).ToArray()));
            Character brom = Result(_client.GetCharacterAsync("brom"));
            Assert.AreEqual(result.GetText("emotion"), brom.Mood, "the reply's effects are applied");
            Assert.AreEqual("Any work for me?", brom.RecentTurns[brom.RecentTurns.Count - 2].Text);

            SayResult again = Result(_client.SayAsync("brom", "player", "Any work for me?", Template, new SayOptions { Seed = 3, Stream = false }));
            Assert.AreEqual(FinishReasons.Complete, again.FinishReason);
        }

        [Test]
        public void ASayRequestIsAwaitedDirectly()
        {
            SayResult awaited = Result(AwaitSay());
            Assert.AreEqual(FinishReasons.Complete, awaited.FinishReason);
            Assert.IsNotNull(awaited.GetText("say"));
        }

        private async System.Threading.Tasks.Task<SayResult> AwaitSay()
        {
            return await _client.Say("brom", "player", "Is the forge hot?", Template, new SayOptions { Seed = 4, Stream = false });
        }

        [Test]
        public void ReactAnswersAnEventAndTwoAtOnceShareOneReply()
        {
            string id = "smith" + Guid.NewGuid().ToString("N").Substring(0, 8);
            Result(_client.UpsertCharacterAsync(new Character { Id = id, Name = "Hale", Persona = "A quiet smith." }));
            SayRequest first = _client.React(id, "Aria walks into the forge.", Template, "player", new SayOptions { Seed = 2, Stream = false });
            SayRequest second = _client.React(id, "Aria walks into the forge.", Template, "player", new SayOptions { Stream = false });
            SayResult one = Result(first.Task);
            SayResult two = Result(second.Task);
            Assert.AreEqual(FinishReasons.Complete, one.FinishReason);
            Assert.AreEqual("player", one.SpeakerId);
            Assert.IsTrue(one.Coalesced != two.Coalesced, "one event was answered, the other shared its reply");
            Assert.AreEqual(one.GetText("say"), two.GetText("say"));
            List<Turn> turns = Result(_client.GetCharacterAsync(id)).RecentTurns;
            Assert.AreEqual(1, turns.FindAll(delegate(Turn t) { return t.IsEvent; }).Count, "one event recorded");
            Assert.AreEqual("Aria walks into the forge.", turns[0].Text);
            Assert.AreEqual("player", turns[0].SpeakerId);
            // (rate_limited, which depends on how long a reply takes, is tested in tests/test_events.py.)
        }

        [Test]
        public void AnNpcSpeaksToAnotherAndNeverToItself()
        {
            // Characters of their own: other tests look at Brom's mood.
            string suffix = Guid.NewGuid().ToString("N").Substring(0, 8);
            string smith = "smith" + suffix, baker = "baker" + suffix;
            Result(_client.UpsertCharacterAsync(new Character { Id = smith, Name = "Hale", Persona = "A quiet smith." }));
            Result(_client.UpsertCharacterAsync(new Character { Id = baker, Name = "Mira", Persona = "A sharp-eyed baker." }));
            SayResult reply = Result(_client.SayAsync(smith, baker, "Your bread was late.", Template, new SayOptions { Seed = 4, Stream = false }));
            Assert.AreEqual(baker, reply.SpeakerId);
            List<Turn> bakerTurns = Result(_client.GetCharacterAsync(baker)).RecentTurns;
            Assert.AreEqual("Your bread was late.", bakerTurns[0].Text, "the speaker keeps its own view");
            Assert.AreEqual(smith, bakerTurns[bakerTurns.Count - 1].SpeakerId);
            ServerException itself = (ServerException)Failure(_client.SayAsync(smith, smith, "Hello, me.", Template));
            Assert.AreEqual("invalid_request", itself.Code);
        }

        [Test]
        public void ASnapshotGoesIntoTheGamesSaveFileAndComesBack()
        {
            string id = "keeper" + Guid.NewGuid().ToString("N").Substring(0, 8);
            Result(_client.UpsertCharacterAsync(new Character { Id = id, Name = "Ione", Persona = "A lighthouse keeper.", Mood = "calm" }));
            Result(_client.SaveSnapshotAsync("save_" + id, id));
            byte[] saveFile = Result(_client.ExportSnapshotAsync("save_" + id));
            Assert.Greater(saveFile.Length, 0);
            Result(_client.UpsertCharacterAsync(new PackMap { { "id", id }, { "mood", "angry" } }));
            SnapshotInfo imported = Result(_client.ImportSnapshotAsync(saveFile, "file_" + id));
            Assert.AreEqual("file_" + id, imported.Name);
            Result(_client.LoadSnapshotAsync("file_" + id));
            Assert.AreEqual("calm", Result(_client.GetCharacterAsync(id)).Mood);
            byte[] damaged = (byte[])saveFile.Clone();
            damaged[damaged.Length / 2] ^= 0xFF;
            ServerException refused = (ServerException)Failure(_client.ImportSnapshotAsync(damaged, "broken_" + id));
            Assert.AreEqual("snapshot_error", refused.Code);
            Assert.IsFalse(Result(_client.ListSnapshotsAsync()).Exists(delegate(SnapshotInfo s) { return s.Name == "broken_" + id; }));
        }

        [Test]
        public void CancelStopsASay()
        {
            SayRequest request = _client.Say("brom", "player", "Tell me a long story.", Template, new SayOptions { Seed = 1 });
            Result(request.CancelAsync().ContinueWith(delegate(Task t) { return t.Exception; }));
            SayResult result = Result(request.Task);
            Assert.AreEqual(FinishReasons.Cancelled, result.FinishReason, "the server is slowed (frame budget) so the cancel lands first");
            Assert.IsNull(result.Fields);
            Assert.AreEqual("unknown_request", Failure(_client.CancelAsync("never-sent")).Code);
        }

        [Test]
        public void ServerErrorsAreTyped()
        {
            ServerException unknownOp = (ServerException)Failure(_client.RequestAsync("no.such.op"));
            Assert.AreEqual("unknown_op", unknownOp.Code);
            Assert.IsNotNull(unknownOp.Details.GetList("supported_ops"));
            ServerException invalid = (ServerException)Failure(_client.RequestAsync("character.get", new PackMap { { "character_id", 5L } }));
            Assert.AreEqual("invalid_request", invalid.Code);
            Assert.AreEqual("unknown_template", Failure(_client.SayAsync("brom", "player", "hi", "no_such_template")).Code);
            Assert.AreEqual("unknown_character", Failure(_client.SayAsync("nobody", "player", "hi", Template)).Code);
            Assert.AreEqual("invalid_prompt", Failure(_client.SayAsync("brom", "player", "   ", Template)).Code);
            Assert.AreEqual("unknown_snapshot", Failure(_client.LoadSnapshotAsync("no_such_slot")).Code);

            PackMap wrongVersion = new PackMap { { "protocol_version", "9.0" }, { "op", "ping" }, { "request_id", "v9" } };
            NpcEngineException version = Failure(_client.SubmitMessage(wrongVersion, "v9"));
            Assert.IsInstanceOf<VersionMismatchException>(version);
            Assert.AreEqual("unsupported_version", version.Code);
            Assert.Greater(Result(_client.PingAsync()), 0, "the connection keeps serving after errors");
        }

        [Test]
        public void SnapshotsSaveListLoadDelete()
        {
            // A known mood first: an earlier test's reply may have left Brom angry already.
            Result(_client.UpsertCharacterAsync(new PackMap { { "id", "brom" }, { "mood", "neutral" } }));
            SnapshotInfo saved = Result(_client.SaveSnapshotAsync("slot_cs", "brom"));
            Assert.AreEqual("character", saved.Scope);
            Result(_client.UpsertCharacterAsync(new PackMap { { "id", "brom" }, { "mood", "angry" } }));
            Assert.AreEqual("slot_cs", Result(_client.LoadSnapshotAsync("slot_cs")).Name);
            Assert.AreEqual("neutral", Result(_client.GetCharacterAsync("brom")).Mood, "loading restores the saved state");
            Assert.IsTrue(Result(_client.ListSnapshotsAsync()).Exists(delegate(SnapshotInfo s) { return s.Name == "slot_cs"; }));
            Done(_client.DeleteSnapshotAsync("slot_cs"));
            PackMap stats = Result(_client.StatsAsync());
            Assert.IsNotNull(stats.GetMap("engine"));
            Assert.Greater(stats.GetMap("server").Count, 0);
        }

        [Test]
        public void OversizedReplyFailsItsRequestOnly()
        {
            Result(_client.UpsertCharacterAsync(new PackMap { { "id", "big" }, { "name", "Big" }, { "persona", new string('p', 3000) } }));
            using (NpcClient small = NewClient(new NpcClientOptions { MaxReplyBytes = 1000 }))
            {
                Task<Character> call = small.GetCharacterAsync("big");
                NpcEngineException error = Failure(call);
                Assert.IsInstanceOf<ReplyTooLargeException>(error);
                Assert.IsNotNull(error.RequestId, "the skipped reply is matched to its request");
                Assert.Greater(Result(small.PingAsync()), 0, "the connection is kept");
                Assert.AreEqual(1, small.NumConnects);
            }
        }

        [Test]
        public void HeartbeatsKeepAnIdleConnection()
        {
            Result(_client.PingAsync());
            Thread.Sleep(TimeSpan.FromSeconds(6.5));  // the server drops a connection silent for 5 s
            Assert.GreaterOrEqual(_client.NumPingsAnswered, 5);
            Assert.Greater(Result(_client.PingAsync()), 0);
            Assert.AreEqual(1, _client.NumConnects, "no reconnect was needed");
        }

        [Test]
        public void ReconnectsAfterAServerRestart()
        {
            if (!TestEnvironment.CanRestart)
            {
                Assert.Ignore("the server is not owned by this run");
            }
            int numDisconnects = 0;
            _client.Disconnected += delegate { Interlocked.Increment(ref numDisconnects); };
            Result(_client.HelloAsync());
            SayRequest inFlight = _client.Say("brom", "player", "Are you there?", Template);
            Thread.Sleep(100);
            TestEnvironment.KillServer();
            Assert.AreEqual(LocalCodes.ConnectionLost, Failure(inFlight.Task).Code, "a say in flight fails, it does not hang");
            Task<long> queued = _client.PingAsync();  // made while the server is down
            string endpoint = TestEnvironment.Endpoint;  // starts it again, same port
            Assert.AreEqual(_client.Options.Endpoint, endpoint);
            Assert.Greater(Result(queued), 0, "a request made while disconnected is sent after the reconnect");
            Assert.AreEqual(Protocol.Version, Result(_client.HelloAsync()).ProtocolVersion);
            Assert.GreaterOrEqual(_client.NumConnects, 2);
            Assert.GreaterOrEqual(numDisconnects, 1);
            Assert.IsTrue(_errors.Exists(delegate(NpcEngineException e) { return e.Code == LocalCodes.ConnectFailed; }),
                "the outage was reported while reconnecting");
        }
    }
}
