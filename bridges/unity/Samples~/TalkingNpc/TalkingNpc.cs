using NpcEngine;
using NpcEngine.Unity;
using UnityEngine;

namespace NpcEngine.Samples
{
    /// <summary>
    /// A talking NPC: put it on the NPC's GameObject (it adds an NpcEngineClient and an NpcServer),
    /// press Play, type into the field and press Enter or "Say". The speech bubble over the NPC
    /// shows drafts settling into the final line; mood and trust show below. Drawn with IMGUI so
    /// the sample needs no UI package. It finds its server one of three ways, without code
    /// (<see cref="Mode"/>; the Console says which, and how to switch): a server you started
    /// (<see cref="connectTo"/>), the NPC Server's development command, or an imported bundle.
    /// </summary>
    [RequireComponent(typeof(NpcEngineClient))]
    [RequireComponent(typeof(NpcServer))]
    [AddComponentMenu("NPC Engine/Samples/Talking NPC")]
    public sealed class TalkingNpc : MonoBehaviour
    {
        public const string ConnectMode = "connect to a running server";
        public const string DevelopmentMode = "start the development command";
        public const string BundleMode = "start the imported bundle";

        [Tooltip("A server you started yourself, e.g. tcp://127.0.0.1:5555 (`./npc serve --templates schemas/templates` " +
                 "prints it); empty: the NPC Server component starts one")]
        public string connectTo = "";
        [Tooltip("The NPC: a character asset (Create > NPC Engine > Character; this sample ships Brom.asset). " +
                 "It is upserted before the client reports Connected")]
        public NpcCharacter character;
        public string speakerId = "player";
        public string playerName = "Traveller";
        [Tooltip("shopkeeper_authored: lines from the built-in model's corpus with the right names; shopkeeper_reply: free text")]
        public string template = "shopkeeper_authored";

        private NpcEngineClient _engine;
        private NpcCharacter _listed;  // the character this component put in the client's list
        private SayRequest _current;
        private string _bubble = "...";
        private string _status = "";
        private string _input = "";
        private bool _isReady;

        /// <summary>How this NPC reaches its server (one of the *Mode constants), decided in Awake.</summary>
        public string Mode { get; private set; }
        /// <summary>Connected, and the character is on the server: the player can talk.</summary>
        public bool IsReady { get { return _isReady; } }

        private void Awake()
        {
            NpcServer server = GetComponent<NpcServer>();
            if (!string.IsNullOrEmpty(connectTo))
            {
                Mode = ConnectMode;
                server.startOnStart = false;  // every Awake runs before any Start
                Debug.Log("Talking NPC: connecting to " + connectTo + ". To have the game start its own server instead, " +
                          "clear Talking NPC > Connect To (then the NPC Server starts its development command or the bundle).");
            }
            else if (!string.IsNullOrEmpty(server.developmentCommand))
            {
                Mode = DevelopmentMode;
                Debug.Log("Talking NPC: starting the development command " + server.developmentCommand + ". To use a server " +
                          "you started, set Talking NPC > Connect To; to test the imported bundle, clear NPC Server > Development Command.");
            }
            else
            {
                Mode = BundleMode;
                Debug.Log("Talking NPC: starting the server bundle in StreamingAssets/" + server.bundleFolder + ". To use a " +
                          "server you started (`./npc serve --templates schemas/templates`), set Talking NPC > Connect To to " +
                          "tcp://127.0.0.1:5555; to run your clone's Python, set NPC Server > Development Command.");
            }
            if (_engine == null)
            {
                Wire();
            }
            _status = Mode == ConnectMode ? "connecting..." : "starting the server...";
            if (character == null)
            {
                character = DefaultCharacter();
                Debug.Log("Talking NPC: no character asset assigned; using a built-in Brom. Drag Brom.asset (or your own, " +
                          "Create > NPC Engine > Character) onto Talking NPC > Character.");
            }
            if (_listed != character)
            {
                _engine.characters.Remove(_listed);
                _engine.characters.Add(character);  // upserted on every connect, before Connected
                _listed = character;
            }
        }

        private void Wire()
        {
            _engine = GetComponent<NpcEngineClient>();
            _engine.defaultTemplate = template;
            _engine.Connected += OnConnected;
            _engine.DraftReceived += delegate(string id, Draft draft) { _bubble = draft.Fields.GetString("say", "") + " ..."; };
            _engine.LineReady += OnLine;
            _engine.ErrorRaised += delegate(NpcEngineException error) { _status = error.Code + ": " + error.Message; };
            GetComponent<NpcServer>().onError.AddListener(delegate(string code, string message) { _status = code + ": " + message; });
            _engine.Disconnected += delegate { _status = "server gone; reconnecting..."; _isReady = false; };
        }

        private void Start()
        {
            if (Mode == ConnectMode)
            {
                _status = "connecting to " + connectTo + "...";
                _engine.endpoint = connectTo;
                _engine.Connect();
            }
        }

        private async void OnConnected(HelloResult hello)
        {
            _status = "model: " + hello.Model.NumParameters + " parameters on " + hello.Model.Device;
            try
            {
                await _engine.Client.UpsertSpeakerAsync(speakerId, playerName);
                _isReady = true;
                if (hello.Capabilities != null && hello.Capabilities.Contains("events"))
                {
                    // The player walks up: the NPC greets them (a game event, protocol 1.1) before a word is said.
                    _bubble = "...";
                    _current = _engine.React(character.id, playerName + " walks up to " + character.displayName + ".",
                                             causerId: speakerId);
                }
            }
            catch (NpcEngineException error)
            {
                _status = error.Code + ": " + error.Message;
            }
        }

        private void OnLine(SayResult result)
        {
            _current = null;
            if (result.IsCancelled)
            {
                _bubble = "(interrupted)";
                return;
            }
            _bubble = result.GetText("say");
            string changes = "";
            foreach (StateChange change in result.Changes)
            {
                changes += change.Path + " -> " + change.New + "   ";
            }
            _status = result.GetText("emotion") + ", " + result.GetText("action") + "   " + changes;
        }

        private void Speak()
        {
            if (!_isReady || _input.Trim().Length == 0)
            {
                return;
            }
            if (_current != null)
            {
                _current.CancelAsync();  // the player interrupted: drop the old line
            }
            _bubble = "...";
            _current = _engine.Say(character.id, speakerId, _input);
            _input = "";
        }

        private static NpcCharacter DefaultCharacter()
        {
            NpcCharacter brom = ScriptableObject.CreateInstance<NpcCharacter>();
            brom.name = "Brom (built in)";
            brom.id = "brom";
            brom.displayName = "Brom";
            brom.persona = "A gruff but fair blacksmith in the village of Thornvale. Proud of his work, wary of strangers.";
            return brom;
        }

        private void OnGUI()
        {
            Camera view = Camera.main;
            if (view != null)
            {
                Vector3 screen = view.WorldToScreenPoint(transform.position + Vector3.up * 2f);
                GUI.Box(new Rect(screen.x - 160f, Screen.height - screen.y - 60f, 320f, 50f), _bubble);
            }
            GUI.Label(new Rect(10f, Screen.height - 70f, 800f, 24f), _status);
            Event current = Event.current;
            bool isEnter = current != null && current.type == EventType.KeyDown && current.keyCode == KeyCode.Return;
            _input = GUI.TextField(new Rect(10f, Screen.height - 40f, 500f, 28f), _input);
            if (GUI.Button(new Rect(520f, Screen.height - 40f, 80f, 28f), "Say") || isEnter)
            {
                Speak();
            }
        }
    }
}
