using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Threading;
using NpcEngine.Unity;
using NUnit.Framework;
using UnityEngine;

namespace NpcEngine.Tests
{
    /// <summary>The MonoBehaviour under the UnityEngine stub, driven frame by frame like the player loop.</summary>
    [TestFixture]
    public class ComponentTests
    {
        private static void RunFrames(NpcEngineClient component, Func<bool> until, double seconds, List<double> frameMs)
        {
            Stopwatch waited = Stopwatch.StartNew();
            while (!until())
            {
                if (waited.Elapsed.TotalSeconds > seconds)
                {
                    Assert.Fail("the condition did not hold within " + seconds + " s of frames");
                }
                Stopwatch frame = Stopwatch.StartNew();
                StubPlayerLoop.Send(component, "Update");
                frameMs.Add(frame.Elapsed.TotalMilliseconds);
                Thread.Sleep(16);
            }
        }

        [Test]
        public void EventsArriveOnTheMainThreadDuringUpdate()
        {
            string endpoint = TestEnvironment.Endpoint;
            GameObject npc = new GameObject("Brom");
            NpcEngineClient component = npc.AddComponent<NpcEngineClient>();
            component.endpoint = endpoint;
            int mainThread = Thread.CurrentThread.ManagedThreadId;
            List<string> seen = new List<string>();
            List<int> threads = new List<int>();
            HelloResult hello = null;
            SayResult line = null;
            component.Connected += delegate(HelloResult h) { hello = h; threads.Add(Thread.CurrentThread.ManagedThreadId); };
            component.DraftReceived += delegate(string id, Draft draft) { seen.Add("draft"); threads.Add(Thread.CurrentThread.ManagedThreadId); };
            component.LineReady += delegate(SayResult result) { line = result; threads.Add(Thread.CurrentThread.ManagedThreadId); };
            string unityLine = null;
            component.onLine.AddListener(delegate(string characterId, string text) { unityLine = characterId + ": " + text; });
            List<double> frameMs = new List<double>();
            StubPlayerLoop.Send(component, "Start");
            try
            {
                RunFrames(component, delegate { return hello != null; }, 240, frameMs);
                Assert.AreEqual(Protocol.Version, hello.ProtocolVersion);
                component.Client.UpsertSpeakerAsync("player", "Aria").Wait();
                component.Client.UpsertCharacterAsync(new Character { Id = "brom", Name = "Brom", Persona = "A smith." }).Wait();
                component.Say("brom", "player", "Hello there!");
                Assert.IsNull(line, "nothing is delivered outside Update");
                RunFrames(component, delegate { return line != null; }, 240, frameMs);
                Assert.AreEqual(FinishReasons.Complete, line.FinishReason);
                Assert.Greater(seen.Count, 0, "drafts were delivered");
                Assert.IsNotNull(unityLine);
                StringAssert.StartsWith("brom: ", unityLine);
                CollectionAssert.AreEqual(new List<int>(new int[threads.Count]).ConvertAll(delegate(int x) { return mainThread; }), threads,
                    "every callback ran on the thread that calls Update");
                frameMs.Sort();
                Console.WriteLine("  component: " + frameMs.Count + " frames, Update() max " + frameMs[frameMs.Count - 1].ToString("F2") + " ms");
            }
            finally
            {
                Stopwatch closing = Stopwatch.StartNew();
                StubPlayerLoop.Send(component, "OnDestroy");
                Assert.Less(closing.Elapsed.TotalSeconds, 3.0, "leaving play mode does not hang");
            }
            Assert.IsNull(component.Client);
        }

        [Test]
        public void AssetsAreOnTheServerWhenConnectedFiresAndBadOnesAreNamedBeforeConnecting()
        {
            string id = "asset" + Guid.NewGuid().ToString("N").Substring(0, 8);
            NpcTemplate greeting = ScriptableObject.CreateInstance<NpcTemplate>();
            greeting.name = "Greeting";
            greeting.templateName = "asset_greeting";
            greeting.slots = new List<NpcSlot>
            {
                new NpcSlot { name = "say", kind = NpcSlotKind.Text, maxTokens = 8 },
                new NpcSlot { name = "mood", kind = NpcSlotKind.Choice, options = new List<string> { "calm", "wary" } },
                new NpcSlot { name = "trust_delta", kind = NpcSlotKind.Integer, min = 1, max = 2 },
            };
            greeting.effects = new List<NpcEffect>
            {
                new NpcEffect { kind = NpcEffectKind.SetMood, slot = "mood" },
                new NpcEffect { kind = NpcEffectKind.AddToRelationship, slot = "trust_delta", dimension = "trust" },
            };
            NpcTemplate noOptions = ScriptableObject.CreateInstance<NpcTemplate>();
            noOptions.name = "NoOptions";
            noOptions.templateName = "no_options";
            noOptions.slots = new List<NpcSlot> { new NpcSlot { name = "pick", kind = NpcSlotKind.Choice } };
            NpcCharacter hale = ScriptableObject.CreateInstance<NpcCharacter>();
            hale.name = "Hale";
            hale.id = id;
            hale.displayName = "Hale";
            hale.persona = "A ferryman who knows the river.";
            hale.knowledge = new List<string> { "The river floods in spring." };
            hale.startingMood = "wary";
            NpcCharacter broken = ScriptableObject.CreateInstance<NpcCharacter>();
            broken.name = "Broken";
            broken.id = "not an id!";
            broken.displayName = "Broken";

            GameObject npc = new GameObject("Ferry");
            NpcEngineClient component = npc.AddComponent<NpcEngineClient>();
            component.endpoint = TestEnvironment.Endpoint;
            component.templates = new List<NpcTemplate> { greeting, noOptions, null };
            component.characters = new List<NpcCharacter> { hale, broken };
            List<string> errors = new List<string>();
            component.onError.AddListener(delegate(string code, string message) { errors.Add(code + ": " + message); });
            HelloResult hello = null;
            Character atConnect = null;
            component.Connected += delegate(HelloResult h)
            {
                hello = h;
                atConnect = component.Client.GetCharacterAsync(id).Result;  // already there when Connected fires
            };
            StubPlayerLoop.Send(component, "Start");
            try
            {
                CollectionAssert.Contains(errors, "invalid_asset: NPC template asset 'NoOptions': slots[0] 'pick': a choice needs at least one option");
                Assert.IsTrue(errors.Exists(e => e.StartsWith("invalid_asset: NPC character asset 'Broken': id 'not an id!'")), string.Join("\n", errors));
                Assert.IsTrue(errors.Exists(e => e == "invalid_asset: NPC character asset 'Broken': persona is empty; say who the character is"));
                Assert.IsNull(hello, "the errors came before connecting");
                RunFrames(component, delegate { return hello != null; }, 240, new List<double>());
                Assert.AreEqual("Hale", atConnect.Name);
                Assert.AreEqual("wary", atConnect.Mood);
                CollectionAssert.AreEqual(new[] { "The river floods in spring." }, atConnect.Knowledge);
                List<PackMap> registered = component.Client.ListTemplatesAsync().Result;
                Assert.IsTrue(registered.Exists(t => t.GetString("name") == "asset_greeting"));
                Assert.IsFalse(registered.Exists(t => t.GetString("name") == "no_options"), "an invalid asset is left out");
                SayResult reply = component.Client.SayAsync(id, "player", "Can you take me across?", "asset_greeting",
                                                            new SayOptions { Seed = 1, Stream = false }).Result;
                CollectionAssert.Contains(new[] { "calm", "wary" }, reply.GetText("mood"));
                // A reconnect upserts again but keeps the mood the game's replies set.
                component.Client.UpsertCharacterAsync(new Character { Id = id, Mood = "calm" }).Wait();
                component.Close();
                hello = null;
                component.Connect();
                RunFrames(component, delegate { return hello != null; }, 240, new List<double>());
                Assert.AreEqual("calm", atConnect.Mood, "the starting mood is for a new character only");
            }
            finally
            {
                StubPlayerLoop.Send(component, "OnDestroy");
            }
        }

        [Test]
        public void ReactTakesItsArgumentsInOneOrderEverywhere()
        {
            // The component and the plain client: the same names in the same order (both are strings,
            // so a swap would compile); the Godot addon and Python's client use it too.
            string[] component = Array.ConvertAll(typeof(NpcEngineClient).GetMethod("React").GetParameters(), p => p.Name);
            string[] client = Array.ConvertAll(typeof(NpcClient).GetMethod("React").GetParameters(), p => p.Name);
            CollectionAssert.AreEqual(new[] { "characterId", "eventText", "template", "causerId", "options" }, component);
            CollectionAssert.AreEqual(component, client);
        }

        [Test]
        public void EveryComponentHasAnAddComponentMenuEntry()
        {
            foreach (Type type in typeof(NpcEngineClient).Assembly.GetTypes())
            {
                if (typeof(MonoBehaviour).IsAssignableFrom(type) && !type.IsAbstract)
                {
                    Assert.IsNotNull(Attribute.GetCustomAttribute(type, typeof(AddComponentMenu)), type.Name + " has no AddComponentMenu");
                }
            }
        }

        [Test]
        public void ServerArgumentsFillPlaceholdersAndStayWholeOnTheCommandLine()
        {
            Application.persistentDataPath = "/saves/My Game";
            Assert.AreEqual("/saves/My Game/npc-engine/state.db", NpcServer.ExpandPlaceholders("{persistentDataPath}/npc-engine/state.db"));
            NpcEngineException unknown = Assert.Throws<NpcEngineException>(delegate { NpcServer.ExpandPlaceholders("{savePath}/x.db"); });
            Assert.AreEqual(LocalCodes.InvalidConfig, unknown.Code);
            StringAssert.Contains("{savePath}", unknown.Message);
            string line = NpcServerProcess.JoinArguments(new[] { "--db", "C:\\My Saves\\", "say \"hi\"", "", "a\\\\b" });
            Assert.AreEqual("--db \"C:\\My Saves\\\\\" \"say \\\"hi\\\"\" \"\" a\\\\b", line);
        }

        [Test]
        public void AnUnknownPlaceholderIsAnErrorEventNotAStart()
        {
            NpcServer server = new GameObject("Brom").AddComponent<NpcServer>();
            server.developmentCommand = "python3";
            server.serverArguments = new List<string> { "--db", "{nowhere}/state.db" };
            List<string> errors = StartAndCollectErrors(server, delegate { return false; });
            StringAssert.StartsWith("invalid_config: NpcServer.serverArguments: unknown placeholder {nowhere}", errors[0]);
            Assert.IsFalse(server.IsRunning);
        }

        [Test]
        public void NoServerRaisesErrorEventsAndQuitsCleanly()
        {
            GameObject npc = new GameObject("Lost");
            NpcEngineClient component = npc.AddComponent<NpcEngineClient>();
            component.endpoint = "tcp://127.0.0.1:" + TestEnvironment.FreePort();
            List<string> codes = new List<string>();
            component.onError.AddListener(delegate(string code, string message) { codes.Add(code); });
            StubPlayerLoop.Send(component, "Start");
            NpcClient client = component.Client;
            RunFrames(component, delegate { return codes.Count > 0; }, 20, new List<double>());
            Assert.AreEqual(LocalCodes.ConnectFailed, codes[0]);
            StubPlayerLoop.Send(component, "OnApplicationQuit");
            StubPlayerLoop.Send(component, "OnDestroy");
            Stopwatch waited = Stopwatch.StartNew();
            while (client.AreThreadsAlive && waited.Elapsed.TotalSeconds < 5)
            {
                Thread.Sleep(20);
            }
            Assert.IsFalse(client.AreThreadsAlive, "no IO thread outlives the component");
        }

        [Test]
        public void AnInvalidEndpointIsAnErrorEventNotAnException()
        {
            GameObject npc = new GameObject("Misconfigured");
            NpcEngineClient component = npc.AddComponent<NpcEngineClient>();
            component.endpoint = "localhost:5555";
            List<string> codes = new List<string>();
            component.onError.AddListener(delegate(string code, string message) { codes.Add(code); });
            StubPlayerLoop.Send(component, "Start");
            Assert.IsNull(component.Say("brom", "player", "hello"));
            CollectionAssert.Contains(codes, "invalid_config");
            StubPlayerLoop.Send(component, "OnDestroy");
        }

        [Test]
        public void SampleComponentBuildsOnTheClient()
        {
            GameObject npc = new GameObject("Sample");
            Samples.TalkingNpc sample = npc.AddComponent<Samples.TalkingNpc>();
            Assert.IsNotNull(sample.GetComponent<NpcEngineClient>(), "RequireComponent adds the client");
            Assert.IsNotNull(sample.GetComponent<NpcServer>(), "and the server it starts");
            Assert.IsFalse(sample.GetComponent<NpcEngineClient>().connectOnStart, "the client waits for the server's endpoint");
            StubPlayerLoop.Send(sample, "OnGUI");
            StubPlayerLoop.Send(sample.GetComponent<NpcEngineClient>(), "OnDestroy");
        }

        [Test]
        public void SampleConnectsToARunningServerWithoutStartingOne()
        {
            GameObject npc = new GameObject("Sample");
            Samples.TalkingNpc sample = npc.AddComponent<Samples.TalkingNpc>();
            Assert.AreEqual(Samples.TalkingNpc.BundleMode, sample.Mode, "no endpoint, no development command: the bundle");
            sample.connectTo = TestEnvironment.Endpoint;
            NpcCharacter asset = ScriptableObject.CreateInstance<NpcCharacter>();
            asset.name = "Sample Hale";
            asset.id = "sample_hale";
            asset.displayName = "Hale";
            asset.persona = "A ferryman who knows the river.";
            asset.knowledge = new List<string> { "The river floods in spring." };
            sample.character = asset;  // as dragged onto Talking NPC > Character
            StubPlayerLoop.Send(sample, "Awake");  // Unity sets Inspector fields before Awake
            Assert.AreEqual(Samples.TalkingNpc.ConnectMode, sample.Mode);
            NpcServer server = sample.GetComponent<NpcServer>();
            NpcEngineClient client = sample.GetComponent<NpcEngineClient>();
            List<string> errors = new List<string>();
            server.onError.AddListener(delegate(string code, string message) { errors.Add(code); });
            StubPlayerLoop.Send(client, "Start");
            StubPlayerLoop.Send(server, "Start");
            StubPlayerLoop.Send(sample, "Start");
            try
            {
                RunFrames(client, delegate { StubPlayerLoop.Send(server, "Update"); return sample.IsReady; }, 240, new List<double>());
                Assert.IsFalse(server.IsRunning, "no server was started");
                CollectionAssert.IsEmpty(errors, "no bad_bundle: the bundle was never looked for");
                Assert.AreEqual(TestEnvironment.Endpoint, client.endpoint);
                Character stored = client.Client.GetCharacterAsync("sample_hale").Result;
                CollectionAssert.AreEqual(new[] { "The river floods in spring." }, stored.Knowledge,
                                          "the sample's character asset is on the server when it is ready");
            }
            finally
            {
                StubPlayerLoop.Send(client, "OnDestroy");
            }
            server.developmentCommand = "python3";
            sample.connectTo = "";
            StubPlayerLoop.Send(sample, "Awake");
            Assert.AreEqual(Samples.TalkingNpc.DevelopmentMode, sample.Mode);
        }

        [Test]
        public void SampleStartsTheDevelopmentCommand()
        {
            SampleStartsItsOwnServer(Samples.TalkingNpc.DevelopmentMode);
        }

        [Test]
        public void SampleStartsTheImportedBundle()
        {
            SampleStartsItsOwnServer(Samples.TalkingNpc.BundleMode);
        }

        private static void SampleStartsItsOwnServer(string mode)
        {
            string python = Environment.GetEnvironmentVariable("NPC_ENGINE_PYTHON");
            string serveArguments = Environment.GetEnvironmentVariable("NPC_ENGINE_SERVE_ARGS") ?? "";
            if (string.IsNullOrEmpty(python) || !serveArguments.Contains(" serve ") || Environment.OSVersion.Platform == PlatformID.Win32NT)
            {
                Assert.Ignore("needs NPC_ENGINE_PYTHON and NPC_ENGINE_SERVE_ARGS naming `npc-engine serve`, and a POSIX shell");
            }
            Application.streamingAssetsPath = ServerBundleTests.NewFolder();
            Application.persistentDataPath = ServerBundleTests.NewFolder();
            GameObject npc = new GameObject("Sample");
            Samples.TalkingNpc sample = npc.AddComponent<Samples.TalkingNpc>();
            NpcServer server = sample.GetComponent<NpcServer>();
            NpcEngineClient client = sample.GetComponent<NpcEngineClient>();
            if (mode == Samples.TalkingNpc.DevelopmentMode)
            {
                server.developmentCommand = python;  // the clone's .venv Python, as the README says
                server.developmentArguments = new List<string>(serveArguments.Split(new[] { ' ' }, StringSplitOptions.RemoveEmptyEntries));
            }
            else
            {
                // An imported bundle: a bundle-shaped folder whose executable hands its flags to serve.
                ServerBundleTests.MakeFakeBundle(Path.Combine(Application.streamingAssetsPath, "npc-engine"), NpcServerBundle.CurrentOs(),
                    "exec \"" + python + "\" " + serveArguments + " \"$@\"");
            }
            StubPlayerLoop.Send(sample, "Awake");
            Assert.AreEqual(mode, sample.Mode);
            StubPlayerLoop.Send(client, "Start");
            StubPlayerLoop.Send(sample, "Start");
            try
            {
                List<string> errors = StartAndCollectErrors(server, delegate
                {
                    StubPlayerLoop.Send(client, "Update");
                    return sample.IsReady;
                });
                Assert.IsEmpty(errors);
                Assert.IsTrue(server.IsRunning, "the game started its own server");
                Assert.AreEqual(server.Endpoint, client.endpoint);
                Assert.AreEqual("brom", client.Client.GetCharacterAsync("brom").Result.Id, "the built-in Brom, no asset assigned");
            }
            finally
            {
                StubPlayerLoop.Send(client, "OnApplicationQuit");
                StubPlayerLoop.Send(server, "OnApplicationQuit");
            }
            Assert.IsFalse(server.IsRunning, "stopped on quit");
        }

        [Test]
        public void NpcServerStartsTheServerConnectsTheClientAndStopsOnQuit()
        {
            string python = Environment.GetEnvironmentVariable("NPC_ENGINE_PYTHON");
            string serveArguments = Environment.GetEnvironmentVariable("NPC_ENGINE_SERVE_ARGS") ?? "";
            if (string.IsNullOrEmpty(python) || !serveArguments.Contains(" serve "))
            {
                Assert.Ignore("needs NPC_ENGINE_PYTHON and NPC_ENGINE_SERVE_ARGS naming `npc-engine serve`");
            }
            GameObject npc = new GameObject("Brom");
            NpcEngineClient component = npc.AddComponent<NpcEngineClient>();
            NpcServer server = npc.AddComponent<NpcServer>();
            server.developmentCommand = python;
            server.developmentArguments = new List<string>(serveArguments.Split(new[] { ' ' }, StringSplitOptions.RemoveEmptyEntries));
            // The defaults, under a folder with a space: each path stays one argument.
            Application.persistentDataPath = Path.Combine(ServerBundleTests.NewFolder(), "Save Data");
            HelloResult hello = null;
            component.Connected += delegate(HelloResult h) { hello = h; };
            bool started = false;
            server.onStarted.AddListener(delegate { started = true; });
            StubPlayerLoop.Send(server, "Awake");
            Assert.IsFalse(component.connectOnStart, "the client waits for the server's endpoint");
            StubPlayerLoop.Send(component, "Start");
            StubPlayerLoop.Send(server, "Start");
            Stopwatch waited = Stopwatch.StartNew();
            while (hello == null)
            {
                Assert.Less(waited.Elapsed.TotalSeconds, 240, "connected within 240 s of frames");
                StubPlayerLoop.Send(server, "Update");
                StubPlayerLoop.Send(component, "Update");
                Thread.Sleep(16);
            }
            Assert.IsTrue(started && server.IsRunning);
            Assert.AreEqual(server.Endpoint, component.endpoint);
            Assert.IsTrue(File.Exists(Path.Combine(Application.persistentDataPath, "npc-engine", "state.db")),
                          "the default --db is the game's own, under persistentDataPath");
            string status = File.ReadAllText(Path.Combine(Application.persistentDataPath, "npc-engine",
                                                          "server-" + Process.GetCurrentProcess().Id + ".json"));
            StringAssert.Contains(server.Endpoint, status, "the status file the studio attaches by");
            int pid = server.Process.ProcessId;
            StubPlayerLoop.Send(component, "OnApplicationQuit");
            StubPlayerLoop.Send(server, "OnApplicationQuit");
            Assert.IsFalse(server.IsRunning);
            bool isGone;
            try
            {
                isGone = Process.GetProcessById(pid).HasExited;
            }
            catch (ArgumentException)
            {
                isGone = true;  // no such process any more
            }
            Assert.IsTrue(isGone, "quitting stopped the server process");
        }

        private static List<string> StartAndCollectErrors(NpcServer server, Func<bool> until)
        {
            List<string> errors = new List<string>();
            server.onError.AddListener(delegate(string code, string message) { errors.Add(code + ": " + message); });
            StubPlayerLoop.Send(server, "Start");
            Stopwatch waited = Stopwatch.StartNew();
            while (errors.Count == 0 && !until())
            {
                Assert.Less(waited.Elapsed.TotalSeconds, 240, "started or failed within 240 s of frames");
                StubPlayerLoop.Send(server, "Update");
                Thread.Sleep(16);
            }
            return errors;
        }

        [Test]
        public void NpcServerSaysWhatIsWrongWithTheBundle()
        {
            Application.streamingAssetsPath = ServerBundleTests.NewFolder();
            NpcServer missing = new GameObject("Brom").AddComponent<NpcServer>();
            List<string> errors = StartAndCollectErrors(missing, delegate { return false; });
            StringAssert.StartsWith("bad_bundle: no server bundle in ", errors[0]);
            StringAssert.Contains("Tools > NPC Engine > Import Server Bundle", errors[0], "the editor says how to get one");
            string foreignOs = NpcServerBundle.CurrentOs() == "windows" ? "linux" : "windows";
            ServerBundleTests.MakeFakeBundle(Path.Combine(Application.streamingAssetsPath, "npc-engine"), foreignOs);
            NpcServer foreign = new GameObject("Brom").AddComponent<NpcServer>();
            errors = StartAndCollectErrors(foreign, delegate { return false; });
            StringAssert.Contains("was built on " + foreignOs + " and runs there only", errors[0]);
            Assert.IsFalse(foreign.IsRunning);
        }

        [Test]
        public void NpcServerRunsTheBundleInStreamingAssets()
        {
            string python = Environment.GetEnvironmentVariable("NPC_ENGINE_PYTHON");
            string serveArguments = Environment.GetEnvironmentVariable("NPC_ENGINE_SERVE_ARGS") ?? "";
            if (string.IsNullOrEmpty(python) || !serveArguments.Contains(" serve ") || Environment.OSVersion.Platform == PlatformID.Win32NT)
            {
                Assert.Ignore("needs NPC_ENGINE_PYTHON and NPC_ENGINE_SERVE_ARGS naming `npc-engine serve`, and a POSIX shell");
            }
            Application.streamingAssetsPath = ServerBundleTests.NewFolder();
            // A bundle-shaped folder whose executable hands its flags to the development server, as
            // the frozen npc-engine-server hands them to serve (copied without its x bit).
            ServerBundleTests.MakeFakeBundle(Path.Combine(Application.streamingAssetsPath, "npc-engine"), NpcServerBundle.CurrentOs(),
                "exec \"" + python + "\" " + serveArguments + " \"$@\"");
            GameObject npc = new GameObject("Brom");
            NpcEngineClient component = npc.AddComponent<NpcEngineClient>();
            NpcServer server = npc.AddComponent<NpcServer>();
            server.serverArguments = new List<string> { "--db", Path.GetTempFileName() + ".db" };
            HelloResult hello = null;
            component.Connected += delegate(HelloResult h) { hello = h; };
            StubPlayerLoop.Send(component, "Start");
            List<string> errors = StartAndCollectErrors(server, delegate
            {
                StubPlayerLoop.Send(component, "Update");
                return hello != null;
            });
            Assert.IsEmpty(errors);
            Assert.AreEqual(server.Endpoint, component.endpoint);
            StubPlayerLoop.Send(component, "OnApplicationQuit");
            StubPlayerLoop.Send(server, "OnApplicationQuit");
            Assert.IsFalse(server.IsRunning);
        }
    }
}
