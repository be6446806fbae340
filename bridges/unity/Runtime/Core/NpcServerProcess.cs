using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Threading;
using System.Threading.Tasks;

namespace NpcEngine
{
    /// <summary>How to start the server: an executable (the shipped bundle's npc-engine-server, or
    /// a development command such as python) and its arguments. The launcher adds
    /// <c>--port 0 --parent-pid &lt;this process&gt; --exit-on-stdin-eof</c>.</summary>
    public sealed class NpcServerOptions
    {
        public string FileName;
        /// <summary>Arguments before the launcher's own, one per entry (quoted for the command line
        /// here: a path with spaces stays one argument), e.g. "-m", "npc_engine.cli", "serve" for python.
        /// When set, <see cref="Arguments"/> is not used.</summary>
        public List<string> ArgumentList;
        /// <summary>The same as one command-line string, quoted by the caller, e.g. "-m npc_engine.cli serve --templates T".</summary>
        public string Arguments = "";
        public string WorkingDirectory;
        /// <summary>How long the server may take to print its first line (loading a model takes seconds).</summary>
        public TimeSpan StartTimeout = TimeSpan.FromSeconds(120);
        /// <summary>How long <see cref="NpcServerProcess.Stop"/> waits after closing stdin before it kills.</summary>
        public TimeSpan StopTimeout = TimeSpan.FromSeconds(5);
    }

    /// <summary>
    /// A server started by the game, whose life is the game's: it listens on a free port (read from
    /// its first stdout line), stops by itself when this process ends however it ends (the server's
    /// --parent-pid and --exit-on-stdin-eof), and <see cref="Stop"/> ends it with a bounded wait,
    /// then a kill. Errors are <see cref="NpcEngineException"/> with code
    /// <see cref="LocalCodes.ServerStartFailed"/>.
    /// </summary>
    public sealed class NpcServerProcess : IDisposable
    {
        private const string ReadyPrefix = "npc-engine serving on ";
        private readonly Process _process;
        private readonly NpcServerOptions _options;
        private readonly Queue<string> _stderrTail = new Queue<string>();

        private NpcServerProcess(Process process, NpcServerOptions options)
        {
            _process = process;
            _options = options;
        }

        /// <summary>The endpoint the server listens on, e.g. tcp://127.0.0.1:49731.</summary>
        public string Endpoint { get; private set; }
        public int ProcessId { get { return _process.Id; } }
        public bool HasExited { get { return _process.HasExited; } }

        /// <summary>The last lines the server wrote to stderr (its log), for error reports.</summary>
        public string StderrTail
        {
            get
            {
                lock (_stderrTail)
                {
                    return string.Join("\n", _stderrTail.ToArray());
                }
            }
        }

        /// <summary>Starts the server and waits (off the caller's thread) for its first line.</summary>
        public static Task<NpcServerProcess> StartAsync(NpcServerOptions options)
        {
            return Task.Run(delegate { return Start(options); });
        }

        /// <summary>Starts the server and blocks until it listens (or fails): call it off the main thread.</summary>
        public static NpcServerProcess Start(NpcServerOptions options)
        {
            if (options == null || string.IsNullOrEmpty(options.FileName))
            {
                throw new ArgumentException("NpcServerOptions.FileName names the server executable");
            }
            string given = options.ArgumentList != null ? JoinArguments(options.ArgumentList) : (options.Arguments ?? "").Trim();
            string arguments = given + " --port 0 --parent-pid " + Process.GetCurrentProcess().Id + " --exit-on-stdin-eof";
            ProcessStartInfo start = new ProcessStartInfo(options.FileName, arguments.Trim())
            {
                UseShellExecute = false,
                RedirectStandardInput = true,
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                CreateNoWindow = true,
                WorkingDirectory = options.WorkingDirectory ?? "",
            };
            Process process = new Process { StartInfo = start };
            NpcServerProcess server = new NpcServerProcess(process, options);
            string firstLine = null;
            ManualResetEvent lineSeen = new ManualResetEvent(false);
            process.OutputDataReceived += delegate(object sender, DataReceivedEventArgs line)
            {
                if (line.Data != null && firstLine == null)
                {
                    firstLine = line.Data;
                    lineSeen.Set();
                }
            };
            process.ErrorDataReceived += delegate(object sender, DataReceivedEventArgs line) { server.Remember(line.Data); };
            try
            {
                process.Start();
            }
            catch (Exception error)  // Win32Exception (not found, not executable), InvalidOperationException
            {
                throw new NpcEngineException(LocalCodes.ServerStartFailed, "cannot start the server " + options.FileName + ": " + error.Message, null, error);
            }
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
            Stopwatch waited = Stopwatch.StartNew();
            while (!lineSeen.WaitOne(100))
            {
                if (process.HasExited || waited.Elapsed > options.StartTimeout)
                {
                    string why = process.HasExited ? "exited with code " + process.ExitCode : "printed nothing within " + options.StartTimeout.TotalSeconds + " s";
                    server.Stop();
                    Thread.Sleep(100);  // the last stderr lines
                    throw new NpcEngineException(LocalCodes.ServerStartFailed, "the server " + why + ": " + server.StderrTail, null);
                }
            }
            if (!firstLine.StartsWith(ReadyPrefix, StringComparison.Ordinal))
            {
                server.Stop();
                throw new NpcEngineException(LocalCodes.ServerStartFailed, "the server's first line is not \"" + ReadyPrefix + "...\": " + firstLine, null);
            }
            server.Endpoint = firstLine.Substring(ReadyPrefix.Length).Split(' ')[0];
            return server;
        }

        /// <summary>One command line from separate arguments, quoted the way .NET and Mono split a
        /// command line back into arguments (the Windows rules): each comes back whole, with its
        /// spaces, quotes and backslashes.</summary>
        public static string JoinArguments(IEnumerable<string> arguments)
        {
            List<string> quoted = new List<string>();
            foreach (string argument in arguments)
            {
                quoted.Add(Quote(argument ?? ""));
            }
            return string.Join(" ", quoted.ToArray());
        }

        private static string Quote(string argument)
        {
            if (argument.Length > 0 && argument.IndexOfAny(new[] { ' ', '\t', '\n', '"' }) < 0)
            {
                return argument;
            }
            System.Text.StringBuilder text = new System.Text.StringBuilder("\"");
            int backslashes = 0;
            foreach (char c in argument)
            {
                if (c == '\\')
                {
                    backslashes++;
                    continue;
                }
                // Backslashes count only before a quote: double them there, and escape the quote.
                text.Append('\\', c == '"' ? backslashes * 2 + 1 : backslashes);
                backslashes = 0;
                text.Append(c);
            }
            text.Append('\\', backslashes * 2);  // before the closing quote
            return text.Append('"').ToString();
        }

        /// <summary>Ends the server: closes its stdin (it stops cleanly, keeping every acknowledged
        /// write), waits up to <see cref="NpcServerOptions.StopTimeout"/>, then kills it.</summary>
        public void Stop()
        {
            try
            {
                if (_process.HasExited)
                {
                    return;
                }
                _process.StandardInput.Close();
                if (!_process.WaitForExit((int)_options.StopTimeout.TotalMilliseconds))
                {
                    _process.Kill();
                    _process.WaitForExit(5000);
                }
            }
            catch (InvalidOperationException)
            {
                // never started, or already gone
            }
        }

        public void Dispose()
        {
            Stop();
            _process.Dispose();
        }

        private void Remember(string line)
        {
            if (line == null)
            {
                return;
            }
            lock (_stderrTail)
            {
                _stderrTail.Enqueue(line);
                while (_stderrTail.Count > 30)
                {
                    _stderrTail.Dequeue();
                }
            }
        }
    }
}
