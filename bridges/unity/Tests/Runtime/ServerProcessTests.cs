using System;
using System.Diagnostics;
using NUnit.Framework;

namespace NpcEngine.Tests
{
    /// <summary>
    /// <see cref="NpcServerProcess"/> with a real `npc-engine serve` (the development command the
    /// suite is given): it reports the endpoint the server picked, a client talks to it, Stop ends
    /// it; a missing executable and a server that exits at once are clear errors.
    /// </summary>
    [TestFixture]
    public class ServerProcessTests
    {
        private static NpcServerOptions DevelopmentServer(string extraArguments = "")
        {
            string python = Environment.GetEnvironmentVariable("NPC_ENGINE_PYTHON");
            string serveArguments = Environment.GetEnvironmentVariable("NPC_ENGINE_SERVE_ARGS") ?? "";
            if (string.IsNullOrEmpty(python) || !serveArguments.Contains(" serve "))
            {
                Assert.Ignore("needs NPC_ENGINE_PYTHON and NPC_ENGINE_SERVE_ARGS naming `npc-engine serve`");
            }
            return new NpcServerOptions { FileName = python, Arguments = serveArguments + " " + extraArguments, StartTimeout = TimeSpan.FromSeconds(180) };
        }

        [Test]
        public void StartsOnAFreePortServesAndStops()
        {
            NpcServerProcess server = NpcServerProcess.Start(DevelopmentServer("--db " + System.IO.Path.GetTempFileName() + ".db"));
            try
            {
                StringAssert.StartsWith("tcp://127.0.0.1:", server.Endpoint);
                Assert.AreNotEqual("tcp://127.0.0.1:0", server.Endpoint, "the port the server picked");
                using (NpcClient client = new NpcClient(new NpcClientOptions { Endpoint = server.Endpoint, RequestTimeout = TimeSpan.FromSeconds(120) }))
                {
                    Assert.IsTrue(client.HelloAsync().Wait(60000));
                    Assert.IsTrue(client.UpsertSpeakerAsync("player", "Aria").Wait(30000));
                    PackMap brom = new PackMap { { "id", "brom" }, { "name", "Brom" }, { "persona", "A gruff smith." } };
                    Assert.IsTrue(client.UpsertCharacterAsync(brom).Wait(30000));
                    var say = client.SayAsync("brom", "player", "Any work?", "shopkeeper_reply", new SayOptions { Seed = 1, Stream = false });
                    Assert.IsTrue(say.Wait(120000));
                    Assert.IsNotNull(say.Result.GetText("say"));
                }
                Stopwatch stopping = Stopwatch.StartNew();
                server.Stop();
                Assert.IsTrue(server.HasExited, "Stop ends the process");
                Assert.Less(stopping.Elapsed.TotalSeconds, 15.0);
            }
            finally
            {
                server.Dispose();
            }
        }

        [Test]
        public void AMissingExecutableIsAClearError()
        {
            NpcEngineException error = Assert.Throws<NpcEngineException>(delegate
            {
                NpcServerProcess.Start(new NpcServerOptions { FileName = "/nonexistent/npc-engine-server" });
            });
            Assert.AreEqual(LocalCodes.ServerStartFailed, error.Code);
            StringAssert.Contains("/nonexistent/npc-engine-server", error.Message);
        }

        [Test]
        public void AServerThatExitsAtOnceIsAClearErrorWithItsOutput()
        {
            NpcServerOptions options = DevelopmentServer("--frame-budget-ms -3");
            NpcEngineException error = Assert.Throws<NpcEngineException>(delegate { NpcServerProcess.Start(options); });
            Assert.AreEqual(LocalCodes.ServerStartFailed, error.Code);
            StringAssert.Contains("exited with code 2", error.Message);
            StringAssert.Contains("frame budget must be a positive number", error.Message);
        }
    }
}
