using System;
using System.Diagnostics;
using System.IO;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Threading;
using NUnit.Framework;

namespace NpcEngine.Tests
{
    /// <summary>
    /// Where the shared vectors are, and a live `npc-engine serve` for the tests that need one.
    /// NPC_ENGINE_SCHEMAS: the repository's schemas/ folder. NPC_ENGINE_PYTHON and
    /// NPC_ENGINE_SERVE_ARGS: how to start the server (the tests pick the port and can restart
    /// it). Or NPC_ENGINE_ENDPOINT: use a server that is already running (restart tests are skipped).
    /// </summary>
    public static class TestEnvironment
    {
        private static readonly object Gate = new object();
        private static Process _server;
        private static string _endpoint;
        private static readonly StringBuilder ServerLog = new StringBuilder();

        public static string SchemasDir
        {
            get
            {
                string configured = Environment.GetEnvironmentVariable("NPC_ENGINE_SCHEMAS");
                if (!string.IsNullOrEmpty(configured))
                {
                    return configured;
                }
                for (DirectoryInfo dir = new DirectoryInfo(Directory.GetCurrentDirectory()); dir != null; dir = dir.Parent)
                {
                    string candidate = Path.Combine(dir.FullName, "schemas");
                    if (File.Exists(Path.Combine(candidate, "PROTOCOL.md")))
                    {
                        return candidate;
                    }
                }
                Assert.Ignore("schemas/ not found: set NPC_ENGINE_SCHEMAS");
                return null;
            }
        }

        public static bool CanRestart
        {
            get { return !string.IsNullOrEmpty(Environment.GetEnvironmentVariable("NPC_ENGINE_PYTHON")); }
        }

        /// <summary>The endpoint of a running server, starting one if this process owns it.</summary>
        public static string Endpoint
        {
            get
            {
                lock (Gate)
                {
                    if (_endpoint != null && (_server == null || !_server.HasExited))
                    {
                        return _endpoint;
                    }
                    string external = Environment.GetEnvironmentVariable("NPC_ENGINE_ENDPOINT");
                    if (!CanRestart)
                    {
                        if (string.IsNullOrEmpty(external))
                        {
                            Assert.Ignore("no server: set NPC_ENGINE_PYTHON + NPC_ENGINE_SERVE_ARGS, or NPC_ENGINE_ENDPOINT");
                        }
                        _endpoint = external;
                        return _endpoint;
                    }
                    if (_endpoint == null)
                    {
                        _endpoint = "tcp://127.0.0.1:" + FreePort();
                    }
                    StartServer();
                    return _endpoint;
                }
            }
        }

        /// <summary>Kills the server (as a crash would); <see cref="Endpoint"/> starts it again on the same port.</summary>
        public static void KillServer()
        {
            lock (Gate)
            {
                if (_server != null && !_server.HasExited)
                {
                    _server.Kill();
                    _server.WaitForExit(10000);
                }
            }
        }

        public static int FreePort()
        {
            TcpListener probe = new TcpListener(IPAddress.Loopback, 0);
            probe.Start();
            int port = ((IPEndPoint)probe.LocalEndpoint).Port;
            probe.Stop();
            return port;
        }

        private static void StartServer()
        {
            string arguments = Environment.GetEnvironmentVariable("NPC_ENGINE_SERVE_ARGS") + " --bind " + _endpoint;
            ProcessStartInfo start = new ProcessStartInfo(Environment.GetEnvironmentVariable("NPC_ENGINE_PYTHON"), arguments)
            {
                UseShellExecute = false,
                RedirectStandardOutput = true,
                RedirectStandardError = true,
            };
            ManualResetEvent ready = new ManualResetEvent(false);
            Process server = new Process { StartInfo = start };
            server.OutputDataReceived += delegate(object sender, DataReceivedEventArgs line)
            {
                if (line.Data != null && line.Data.Contains("serving on"))
                {
                    ready.Set();
                }
            };
            server.ErrorDataReceived += delegate(object sender, DataReceivedEventArgs line)
            {
                lock (ServerLog)
                {
                    if (line.Data != null)
                    {
                        ServerLog.AppendLine(line.Data);
                    }
                }
            };
            server.Start();
            server.BeginOutputReadLine();
            server.BeginErrorReadLine();
            _server = server;
            Stopwatch waited = Stopwatch.StartNew();
            while (!ready.WaitOne(200))
            {
                if (server.HasExited || waited.Elapsed > TimeSpan.FromSeconds(300))
                {
                    string log;
                    lock (ServerLog)
                    {
                        log = ServerLog.ToString();
                    }
                    throw new InvalidOperationException("npc-engine serve did not start: " + log);
                }
            }
        }
    }
}
