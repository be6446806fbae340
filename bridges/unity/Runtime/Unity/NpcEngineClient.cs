using System;
using System.Collections.Generic;
using System.Threading.Tasks;
using UnityEngine;
using UnityEngine.Events;

namespace NpcEngine.Unity
{
    [Serializable]
    public sealed class NpcLineEvent : UnityEvent<string, string>
    {
    }

    [Serializable]
    public sealed class NpcErrorEvent : UnityEvent<string, string>
    {
    }

    /// <summary>
    /// Connects a scene to `npc-engine serve`. Everything it raises (C# events and UnityEvents)
    /// runs on the main thread, during this component's Update(); no call here blocks a frame.
    /// Add one to a GameObject, then call <see cref="Say"/> from your NPC scripts.
    /// </summary>
    [AddComponentMenu("NPC Engine/NPC Engine Client")]
    public sealed class NpcEngineClient : MonoBehaviour
    {
        [Tooltip("The server's endpoint, tcp://HOST:PORT")]
        public string endpoint = Protocol.DefaultEndpoint;

        [Tooltip("Connect and send hello in Start()")]
        public bool connectOnStart = true;

        [Tooltip("Callbacks run per frame at most; the rest wait for the next frame")]
        public int maxCallbacksPerFrame = 64;

        [Tooltip("Seconds a request may wait for its reply")]
        public float requestTimeoutSeconds = 30f;

        [Tooltip("Template used by Say() when none is given")]
        public string defaultTemplate = "shopkeeper_reply";

        [Tooltip("The template field that holds the spoken line")]
        public string lineField = "say";

        [Header("Assets: registered and upserted on every connect, before Connected")]
        [Tooltip("Template assets (Assets > Create > NPC Engine > Template)")]
        public List<NpcTemplate> templates = new List<NpcTemplate>();
        [Tooltip("Character assets (Assets > Create > NPC Engine > Character)")]
        public List<NpcCharacter> characters = new List<NpcCharacter>();

        [Header("Events (main thread)")]
        [Tooltip("A say finished: (character id, line)")]
        public NpcLineEvent onLine = new NpcLineEvent();

        [Tooltip("A say's draft: (character id, line so far)")]
        public NpcLineEvent onDraft = new NpcLineEvent();

        [Tooltip("An error: (code, message)")]
        public NpcErrorEvent onError = new NpcErrorEvent();

        public UnityEvent onConnected = new UnityEvent();
        public UnityEvent onDisconnected = new UnityEvent();

        /// <summary>A say's final reply.</summary>
        public event Action<SayResult> LineReady;
        /// <summary>A say's draft.</summary>
        public event Action<string, Draft> DraftReceived;
        public event Action<NpcEngineException> ErrorRaised;
        /// <summary>The server's hello, after each (re)connect.</summary>
        public event Action<HelloResult> Connected;
        public event Action Disconnected;

        private readonly MainThreadQueue _mainThread = new MainThreadQueue();
        private NpcClient _client;
        private List<NpcTemplate> _validTemplates = new List<NpcTemplate>();
        private List<NpcCharacter> _validCharacters = new List<NpcCharacter>();

        /// <summary>The underlying Task-based client (null until <see cref="Connect"/>), for the ops without a wrapper here.</summary>
        public NpcClient Client { get { return _client; } }

        /// <summary>The latest hello, or null before the first connect.</summary>
        public HelloResult Hello { get; private set; }

        public bool IsConnected { get { return _client != null && _client.IsConnected; } }

        private void Start()
        {
            if (connectOnStart)
            {
                Connect();
            }
        }

        /// <summary>Starts connecting (non-blocking); <see cref="Connected"/> fires after hello and
        /// after the <see cref="templates"/> and <see cref="characters"/> assets are on the server.
        /// An invalid asset is an onError (code invalid_asset, naming the asset and field) now,
        /// before connecting, and is left out; the others still go.</summary>
        public void Connect()
        {
            if (_client != null)
            {
                return;
            }
            _validTemplates = Valid(templates, delegate(NpcTemplate t) { return t.Problems(); });
            _validCharacters = Valid(characters, delegate(NpcCharacter c) { return c.Problems(); });
            NpcClientOptions options = new NpcClientOptions
            {
                Endpoint = endpoint,
                RequestTimeout = TimeSpan.FromSeconds(requestTimeoutSeconds),
            };
            try
            {
                _client = new NpcClient(options, start: false);  // handlers first, then Start()
            }
            catch (ArgumentException error)
            {
                ReportError(new NpcEngineException(LocalCodes.InvalidConfig, error.Message));
                return;
            }
            NpcClient client = _client;
            client.Connected += delegate { SendHello(client); };
            client.Disconnected += delegate(NpcEngineException reason)
            {
                _mainThread.Post(delegate
                {
                    if (Disconnected != null)
                    {
                        Disconnected();
                    }
                    onDisconnected.Invoke();
                });
            };
            client.Error += delegate(NpcEngineException error) { _mainThread.Post(delegate { ReportError(error); }); };
            client.Start();
        }

        /// <summary>
        /// Makes a character speak. Drafts and the final line arrive through the events; the
        /// returned request can be cancelled, and its Task awaited on the main thread too.
        /// Returns null (after an onError) when no client can be made from <see cref="endpoint"/>.
        /// </summary>
        public SayRequest Say(string characterId, string speakerId, string text, string template = null, SayOptions options = null)
        {
            return Track(characterId, options, delegate(SayOptions tracked)
            {
                return _client.Say(characterId, speakerId, text, template ?? defaultTemplate, tracked);
            });
        }

        /// <summary>
        /// Protocol 1.1: the character reacts to a game event ("Aria walks into the forge"), caused
        /// by <paramref name="causerId"/> or by no one (null); the reply arrives like a line. Events
        /// while the character answers one share that reply (<see cref="SayResult.Coalesced"/>);
        /// events sooner than the server's minimum interval raise onError with code rate_limited.
        /// The arguments come in <see cref="NpcClient.React"/>'s order (template before causer; null
        /// template: <see cref="defaultTemplate"/>): name the causer, <c>causerId: "player"</c>.
        /// </summary>
        public SayRequest React(string characterId, string eventText, string template = null, string causerId = null, SayOptions options = null)
        {
            return Track(characterId, options, delegate(SayOptions tracked)
            {
                return _client.React(characterId, eventText, template ?? defaultTemplate, causerId, tracked);
            });
        }

        private SayRequest Track(string characterId, SayOptions options, Func<SayOptions, SayRequest> start)
        {
            if (_client == null)
            {
                Connect();
                if (_client == null)
                {
                    return null;  // the endpoint is invalid; onError has said why
                }
            }
            SayOptions given = options ?? new SayOptions();
            Action<Draft> userDraft = given.OnDraft;
            options = new SayOptions { Seed = given.Seed, Priority = given.Priority, DeadlineMs = given.DeadlineMs, Stream = given.Stream, Timeout = given.Timeout };
            options.OnDraft = delegate(Draft draft)
            {
                _mainThread.Post(delegate
                {
                    if (userDraft != null)
                    {
                        userDraft(draft);
                    }
                    if (DraftReceived != null)
                    {
                        DraftReceived(characterId, draft);
                    }
                    onDraft.Invoke(characterId, draft.Fields.GetString(lineField, ""));
                });
            };
            SayRequest request = start(options);
            request.Task.ContinueWith(delegate(Task<SayResult> done)
            {
                _mainThread.Post(delegate
                {
                    if (done.IsFaulted)
                    {
                        ReportError(Unwrap(done.Exception));
                        return;
                    }
                    SayResult result = done.Result;
                    if (LineReady != null)
                    {
                        LineReady(result);
                    }
                    if (!result.IsCancelled)
                    {
                        onLine.Invoke(characterId, result.GetText(lineField) ?? "");
                    }
                });
            }, TaskScheduler.Default);
            return request;
        }

        /// <summary>Runs the queued callbacks; Unity calls it once per frame.</summary>
        private void Update()
        {
            _mainThread.Drain(Math.Max(1, maxCallbacksPerFrame), delegate(Exception error) { Debug.LogException(error); });
        }

        private void OnDestroy()
        {
            Close();
        }

        private void OnApplicationQuit()
        {
            Close();
        }

        /// <summary>Closes the socket and stops the IO threads (bounded wait; safe to call twice).</summary>
        public void Close()
        {
            NpcClient client = _client;
            _client = null;
            if (client != null)
            {
                client.Dispose();
            }
        }

        private List<T> Valid<T>(List<T> assets, Func<T, List<string>> problemsOf) where T : UnityEngine.Object
        {
            List<T> valid = new List<T>();
            foreach (T asset in assets ?? new List<T>())
            {
                if (asset == null)
                {
                    continue;  // an empty slot in the Inspector's list
                }
                List<string> problems = problemsOf(asset);
                foreach (string problem in problems)
                {
                    ReportError(new NpcEngineException(InvalidAsset, problem));
                }
                if (problems.Count == 0)
                {
                    valid.Add(asset);
                }
            }
            return valid;
        }

        /// <summary>The error code of an asset that cannot be used (its message names the asset and field).</summary>
        public const string InvalidAsset = "invalid_asset";

        /// <summary>Registers the template assets, then upserts the character assets (a character's
        /// starting mood only when it is new); each failure names its asset.</summary>
        private static async Task<List<NpcEngineException>> SyncAssets(NpcClient client, List<NpcTemplate> templates,
                                                                      List<NpcCharacter> characters)
        {
            List<NpcEngineException> errors = new List<NpcEngineException>();
            foreach (NpcTemplate template in templates)
            {
                try
                {
                    await client.RegisterTemplateAsync(template.ToMap()).ConfigureAwait(false);
                }
                catch (Exception error)  // the server's refusal, or a lost connection: name the asset, go on
                {
                    errors.Add(AssetError("NPC template asset '" + template.name + "'", error));
                }
            }
            foreach (NpcCharacter character in characters)
            {
                try
                {
                    bool isNew = false;
                    try
                    {
                        await client.GetCharacterAsync(character.id).ConfigureAwait(false);
                    }
                    catch (ServerException missing) when (missing.Code == "unknown_character")
                    {
                        isNew = true;
                    }
                    await client.UpsertCharacterAsync(character.ToCharacter(isNew)).ConfigureAwait(false);
                }
                catch (Exception error)
                {
                    errors.Add(AssetError("NPC character asset '" + character.name + "'", error));
                }
            }
            return errors;
        }

        private static NpcEngineException AssetError(string label, Exception error)
        {
            NpcEngineException typed = error as NpcEngineException;
            return new NpcEngineException(typed != null ? typed.Code : "internal", label + ": " + error.Message, null, error);
        }

        private void SendHello(NpcClient client)
        {
            List<NpcTemplate> templateAssets = _validTemplates;
            List<NpcCharacter> characterAssets = _validCharacters;
            client.HelloAsync().ContinueWith(async delegate(Task<HelloResult> done)
            {
                List<NpcEngineException> assetErrors = done.IsFaulted ? new List<NpcEngineException>()
                    : await SyncAssets(client, templateAssets, characterAssets).ConfigureAwait(false);
                _mainThread.Post(delegate
                {
                    if (done.IsFaulted)
                    {
                        ReportError(Unwrap(done.Exception));
                        if (done.Exception != null && done.Exception.InnerException is VersionMismatchException)
                        {
                            Close();  // talking on would only produce more refusals
                        }
                        return;
                    }
                    Hello = done.Result;
                    foreach (string warning in Hello.Warnings)
                    {
                        Debug.LogWarning("npc-engine: " + warning);
                    }
                    foreach (NpcEngineException error in assetErrors)
                    {
                        ReportError(error);
                    }
                    if (Connected != null)
                    {
                        Connected(Hello);
                    }
                    onConnected.Invoke();
                });
            }, TaskScheduler.Default);
        }

        private void ReportError(NpcEngineException error)
        {
            if (ErrorRaised != null)
            {
                ErrorRaised(error);
            }
            onError.Invoke(error.Code, error.Message);
        }

        private static NpcEngineException Unwrap(AggregateException error)
        {
            Exception inner = error == null ? null : error.GetBaseException();
            NpcEngineException known = inner as NpcEngineException;
            return known ?? new NpcEngineException("internal", inner == null ? "unknown error" : inner.Message, null, inner);
        }
    }
}
