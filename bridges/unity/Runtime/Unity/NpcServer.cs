using System;
using System.Collections.Generic;
using System.IO;
using System.Text.RegularExpressions;
using System.Threading.Tasks;
using UnityEngine;
using UnityEngine.Events;

namespace NpcEngine.Unity
{
    /// <summary>
    /// Starts the npc-engine server with the game and stops it with the game. By default it runs
    /// the bundle shipped under StreamingAssets (<see cref="bundleFolder"/>, its executable named by its bundle.json); in the editor set
    /// <see cref="developmentCommand"/> (e.g. the path of a venv's python) and
    /// <see cref="developmentArguments"/> ("-m", "npc_engine.cli", "serve"). <see cref="serverArguments"/>
    /// are serve's flags, one per entry, with placeholders for Unity's folders; by default each game
    /// keeps its own state in its persistent data folder. The server listens on a free
    /// port, and the <see cref="NpcEngineClient"/> (the one on this GameObject unless
    /// <see cref="client"/> is set) connects to the endpoint it prints. The server also ends by
    /// itself when the game process ends, however it ends (--parent-pid, --exit-on-stdin-eof).
    /// </summary>
    [AddComponentMenu("NPC Engine/NPC Server")]
    public sealed class NpcServer : MonoBehaviour
    {
        [Tooltip("The server bundle's folder (from `npc-engine bundle`), relative to StreamingAssets or absolute")]
        public string bundleFolder = NpcServerBundle.DefaultFolder;
        [Tooltip("Editor/development: run this instead of the bundle (e.g. .venv/bin/python); empty: the bundle")]
        public string developmentCommand = "";
        [Tooltip("Editor/development: the arguments of developmentCommand, one per entry")]
        public List<string> developmentArguments = new List<string> { "-m", "npc_engine.cli", "serve" };
        [Tooltip("serve flags, one per entry (a path with spaces stays one entry). Placeholders: {persistentDataPath}, " +
                 "{streamingAssetsPath}, {dataPath}, {temporaryCachePath}, {processId}")]
        public List<string> serverArguments = new List<string>
        {
            "--db", "{persistentDataPath}/npc-engine/state.db",
            "--status-file", "{persistentDataPath}/npc-engine/server-{processId}.json",
        };
        [Tooltip("The client to connect (default: the NpcEngineClient on this GameObject)")]
        public NpcEngineClient client;
        public bool startOnStart = true;
        public float startTimeoutSeconds = 120f;
        public float stopTimeoutSeconds = 5f;

        public UnityEvent onStarted = new UnityEvent();
        public NpcErrorEvent onError = new NpcErrorEvent();

        private Task<NpcServerProcess> _starting;
        private NpcServerProcess _server;

        /// <summary>The endpoint the running server listens on, or null.</summary>
        public string Endpoint { get { return _server != null ? _server.Endpoint : null; } }
        public bool IsRunning { get { return _server != null && !_server.HasExited; } }
        /// <summary>The server process, once started (its id, its stderr tail).</summary>
        public NpcServerProcess Process { get { return _server; } }

        private void Awake()
        {
            if (client == null)
            {
                client = GetComponent<NpcEngineClient>();
            }
            if (client != null)
            {
                client.connectOnStart = false;  // it connects once the server says where it listens
            }
        }

        private void Start()
        {
            if (startOnStart)
            {
                StartServer();
            }
        }

        /// <summary>Starts the server (non-blocking; <see cref="onStarted"/> or <see cref="onError"/> follows in a later Update).</summary>
        public void StartServer()
        {
            if (_starting != null || _server != null)
            {
                return;
            }
            bool isDevelopment = !string.IsNullOrEmpty(developmentCommand);
            string executable = developmentCommand;
            List<string> arguments = new List<string>();
            try
            {
                if (!isDevelopment)
                {
                    executable = BundleExecutable();  // no bundle, an incomplete one, another OS's: throws
                }
                else
                {
                    arguments.AddRange(developmentArguments ?? new List<string>());
                }
                foreach (string argument in serverArguments ?? new List<string>())
                {
                    arguments.Add(ExpandPlaceholders(argument));
                }
            }
            catch (NpcEngineException error)
            {
                _starting = Task.FromException<NpcServerProcess>(error);
                return;
            }
            Debug.Log("npc-engine server: starting " + (isDevelopment ? "the development command " : "the bundle ") +
                      executable + " " + NpcServerProcess.JoinArguments(arguments));
            NpcServerOptions options = new NpcServerOptions
            {
                FileName = executable,
                ArgumentList = arguments,
                StartTimeout = TimeSpan.FromSeconds(startTimeoutSeconds),
                StopTimeout = TimeSpan.FromSeconds(stopTimeoutSeconds),
            };
            _starting = NpcServerProcess.StartAsync(options);
        }

        private static readonly Regex Placeholder = new Regex(@"\{([A-Za-z]+)\}");

        /// <summary>An argument with its placeholders filled: {persistentDataPath}, {streamingAssetsPath},
        /// {dataPath}, {temporaryCachePath} (Unity's folders), {processId} (this game's). An unknown one
        /// throws an <see cref="NpcEngineException"/> with code invalid_config naming it.</summary>
        public static string ExpandPlaceholders(string argument)
        {
            return Placeholder.Replace(argument ?? "", delegate(Match match)
            {
                switch (match.Groups[1].Value)
                {
                    case "persistentDataPath": return Application.persistentDataPath;
                    case "streamingAssetsPath": return Application.streamingAssetsPath;
                    case "dataPath": return Application.dataPath;
                    case "temporaryCachePath": return Application.temporaryCachePath;
                    case "processId": return System.Diagnostics.Process.GetCurrentProcess().Id.ToString();
                    default:
                        throw new NpcEngineException(LocalCodes.InvalidConfig, "NpcServer.serverArguments: unknown placeholder " +
                            match.Value + " in \"" + argument + "\" (known: {persistentDataPath}, {streamingAssetsPath}, " +
                            "{dataPath}, {temporaryCachePath}, {processId})");
                }
            });
        }

        /// <summary>The bundle's executable, checked: the folder is a whole bundle built for this OS.</summary>
        private string BundleExecutable()
        {
            string folder = Path.IsPathRooted(bundleFolder) ? bundleFolder : Path.Combine(Application.streamingAssetsPath, bundleFolder);
            NpcServerBundle bundle;
            try
            {
                bundle = NpcServerBundle.Read(folder);
            }
            catch (NpcEngineException error)
            {
                string how = Application.isEditor ? " (Tools > NPC Engine > Import Server Bundle..., or set developmentCommand)" : "";
                throw new NpcEngineException(error.Code, error.Message + how, null, error);
            }
            string problem = bundle.ProblemFor(NpcServerBundle.CurrentOs());
            if (problem != null)
            {
                throw new NpcEngineException(LocalCodes.BadBundle, problem);
            }
            NpcServerBundle.MakeExecutable(bundle.ExecutablePath);  // some copies drop the bit
            return bundle.ExecutablePath;
        }

        private void Update()
        {
            Task<NpcServerProcess> starting = _starting;
            if (starting == null || !starting.IsCompleted)
            {
                return;
            }
            _starting = null;
            if (starting.IsFaulted)
            {
                Exception error = starting.Exception.GetBaseException();
                NpcEngineException typed = error as NpcEngineException;
                string code = typed != null ? typed.Code : LocalCodes.ServerStartFailed;
                Debug.LogError("npc-engine server: " + error.Message);
                onError.Invoke(code, error.Message);
                return;
            }
            _server = starting.Result;
            Debug.Log("npc-engine server listening on " + _server.Endpoint +
                      " (inspect it with: npc-engine studio --connect " + _server.Endpoint + ")");
            if (client != null)
            {
                client.endpoint = _server.Endpoint;
                client.Connect();
            }
            onStarted.Invoke();
        }

        /// <summary>Disconnects the client and ends the server (bounded wait, then a kill).</summary>
        public void StopServer()
        {
            if (client != null)
            {
                client.Close();
            }
            NpcServerProcess server = _server;
            _server = null;
            if (server != null)
            {
                server.Dispose();
            }
            Task<NpcServerProcess> starting = _starting;
            _starting = null;
            if (starting != null)  // quit while it was starting (leaving play mode): end it once it is up
            {
                starting.ContinueWith(delegate(Task<NpcServerProcess> done)
                {
                    if (!done.IsFaulted && !done.IsCanceled)
                    {
                        done.Result.Dispose();
                    }
                }, TaskScheduler.Default);
            }
        }

        private void OnApplicationQuit()
        {
            StopServer();
        }

        private void OnDestroy()
        {
            StopServer();
        }
    }
}
