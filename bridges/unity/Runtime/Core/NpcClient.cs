using System;
using System.Collections.Generic;
using System.Runtime.CompilerServices;
using System.Threading;
using System.Threading.Tasks;

namespace NpcEngine
{
    /// <summary>Options of one say; the defaults stream drafts and use the client's timeout.</summary>
    public sealed class SayOptions
    {
        public long? Seed;
        public double Priority;
        /// <summary>Soft deadline: past it the engine returns its best whole valid reply.</summary>
        public double? DeadlineMs;
        /// <summary>Ask for draft events (see <see cref="OnDraft"/>).</summary>
        public bool Stream = true;
        public TimeSpan? Timeout;
        /// <summary>Called for each draft, on the client's IO thread (the Unity component moves it to the main thread).</summary>
        public Action<Draft> OnDraft;
        /// <summary>Protocol 1.3: values for the template's pattern placeholders (<c>{player}</c>,
        /// <c>{item}</c>, ...), over the ones the server reads from state. Left out when null or empty.</summary>
        public Dictionary<string, string> Values;
        /// <summary>Protocol 1.3: this say's options for choice slots, by slot name (the items the NPC
        /// has now, for a <c>give_item</c> slot). Left out when null or empty.</summary>
        public Dictionary<string, List<string>> Options;
    }

    /// <summary>A say in flight: its id, its result, and a way to cancel it.</summary>
    public sealed class SayRequest
    {
        private readonly NpcClient _client;

        internal SayRequest(NpcClient client, string requestId, Task<SayResult> task)
        {
            _client = client;
            RequestId = requestId;
            Task = task;
        }

        public string RequestId { get; private set; }

        /// <summary>Completes with the reply (finish reason "cancelled" after a cancel), or fails with an <see cref="NpcEngineException"/>.</summary>
        public Task<SayResult> Task { get; private set; }

        /// <summary>Asks the server to stop this say; <see cref="Task"/> then completes as cancelled.</summary>
        public Task CancelAsync()
        {
            return _client.CancelAsync(RequestId);
        }

        /// <summary>Lets a say be awaited directly: <c>SayResult reply = await engine.Say(...);</c>.</summary>
        public TaskAwaiter<SayResult> GetAwaiter()
        {
            return Task.GetAwaiter();
        }
    }

    /// <summary>
    /// The plain C# client: Task-based calls for every op of schemas/PROTOCOL.md, usable from any
    /// .NET code. Thread-safe; nothing here blocks the calling thread. Connection events and
    /// drafts arrive on the client's IO thread.
    /// </summary>
    public sealed class NpcClient : IDisposable
    {
        private sealed class Pending
        {
            public string Op;
            public TaskCompletionSource<PackMap> Completion;
            public Action<PackMap> OnEvent;
            public Timer Timer;
        }

        private readonly NpcClientOptions _options;
        private readonly NpcConnection _connection;
        private readonly Dictionary<string, Pending> _pending = new Dictionary<string, Pending>();
        private readonly string _idPrefix;
        private long _nextId;
        private volatile bool _isDisposed;
        private int _isStarted;

        /// <summary>Connected (or reconnected) to the server. IO thread.</summary>
        public event Action Connected;
        /// <summary>The connection dropped; the client reconnects by itself. IO thread.</summary>
        public event Action<NpcEngineException> Disconnected;
        /// <summary>An error that belongs to no request: connect failures, malformed frames. IO thread.</summary>
        public event Action<NpcEngineException> Error;

        public NpcClient(string endpoint = Protocol.DefaultEndpoint) : this(new NpcClientOptions { Endpoint = endpoint })
        {
        }

        /// <summary>
        /// With <paramref name="start"/> (the default) starts connecting at once. Pass false to
        /// subscribe to <see cref="Connected"/> and the other events first, then call
        /// <see cref="Start"/>: on loopback the handshake can complete before the constructor
        /// returns, so a handler added after an auto-start may miss the first Connected. Calls made
        /// before the connection is up are sent when it is.
        /// </summary>
        public NpcClient(NpcClientOptions options, bool start = true)
        {
            if (options == null)
            {
                throw new ArgumentNullException("options");
            }
            options.Validate();
            _options = options;
            _idPrefix = Guid.NewGuid().ToString("N").Substring(0, 6) + "-";
            _connection = new NpcConnection(options);
            _connection.MessageReceived = OnMessage;
            _connection.ReplyTooLarge = OnReplyTooLarge;
            _connection.Connected = OnConnected;
            _connection.Disconnected = OnDisconnected;
            _connection.ErrorRaised = RaiseError;
            _connection.SendFailed = OnSendFailed;
            if (start)
            {
                Start();
            }
        }

        /// <summary>Starts connecting (once; later calls do nothing). Subscribe to the events first.</summary>
        public void Start()
        {
            if (_isDisposed)
            {
                throw new ClientClosedException("the client is disposed");
            }
            if (Interlocked.Exchange(ref _isStarted, 1) == 0)
            {
                _connection.Start();
            }
        }

        /// <summary>True once <see cref="Start"/> ran (or the constructor started the client).</summary>
        public bool IsStarted { get { return Volatile.Read(ref _isStarted) == 1; } }

        public NpcClientOptions Options { get { return _options; } }
        public bool IsConnected { get { return _connection.IsConnected; } }
        /// <summary>Successful handshakes so far (each reconnect adds one).</summary>
        public int NumConnects { get { return _connection.NumConnects; } }
        /// <summary>Heartbeat PINGs answered on the current connection.</summary>
        public int NumPingsAnswered { get { return _connection.NumPingsAnswered; } }
        /// <summary>False once Dispose has stopped the IO threads.</summary>
        public bool AreThreadsAlive { get { return _connection.AreThreadsAlive; } }

        public int NumOutstanding
        {
            get
            {
                lock (_pending)
                {
                    return _pending.Count;
                }
            }
        }

        /// <summary>Drops the socket as a network failure would (for tests and "reconnect now" buttons).</summary>
        public void DropConnection()
        {
            _connection.DropConnection();
        }

        // -- ops -----------------------------------------------------------------------------

        /// <summary>Checks the protocol version; throws <see cref="VersionMismatchException"/> when the majors differ.</summary>
        public async Task<HelloResult> HelloAsync()
        {
            PackMap fields = new PackMap { { "client_name", _options.ClientName }, { "client_version", Protocol.PackageVersion } };
            HelloResult hello = HelloResult.FromMap(await RequestAsync("hello", fields).ConfigureAwait(false));
            if (!Protocol.IsCompatible(hello.ProtocolVersion))
            {
                PackMap details = new PackMap { { "client_version", Protocol.Version }, { "server_version", hello.ProtocolVersion } };
                throw new VersionMismatchException("the server speaks protocol " + hello.ProtocolVersion + ", this bridge " + Protocol.Version + "; update one of them", details, null);
            }
            return hello;
        }

        public async Task<long> PingAsync()
        {
            return (await RequestAsync("ping").ConfigureAwait(false)).GetLong("server_time_ms");
        }

        public async Task<Character> UpsertCharacterAsync(Character character)
        {
            return await UpsertCharacterAsync(character.ToMap()).ConfigureAwait(false);
        }

        /// <summary>Fields left out keep their stored values.</summary>
        public async Task<Character> UpsertCharacterAsync(PackMap character)
        {
            PackMap result = await RequestAsync("character.upsert", new PackMap { { "character", character } }).ConfigureAwait(false);
            return Character.FromMap(result.GetMap("character"));
        }

        public async Task<Character> GetCharacterAsync(string characterId)
        {
            PackMap result = await RequestAsync("character.get", new PackMap { { "character_id", characterId } }).ConfigureAwait(false);
            return Character.FromMap(result.GetMap("character"));
        }

        public async Task<List<string>> ListCharactersAsync()
        {
            return (await RequestAsync("character.list").ConfigureAwait(false)).GetStrings("character_ids");
        }

        public Task DeleteCharacterAsync(string characterId)
        {
            return RequestAsync("character.delete", new PackMap { { "character_id", characterId } });
        }

        public async Task<Speaker> UpsertSpeakerAsync(string speakerId, string name, string description = "")
        {
            PackMap speaker = new PackMap { { "id", speakerId }, { "name", name }, { "description", description } };
            PackMap result = await RequestAsync("speaker.upsert", new PackMap { { "speaker", speaker } }).ConfigureAwait(false);
            return Speaker.FromMap(result.GetMap("speaker"));
        }

        public async Task<List<Speaker>> ListSpeakersAsync()
        {
            List<Speaker> speakers = new List<Speaker>();
            foreach (PackMap speaker in Character.Maps((await RequestAsync("speaker.list").ConfigureAwait(false)).GetList("speakers")))
            {
                speakers.Add(Speaker.FromMap(speaker));
            }
            return speakers;
        }

        public async Task<bool> DeleteSpeakerAsync(string speakerId)
        {
            return (await RequestAsync("speaker.delete", new PackMap { { "speaker_id", speakerId } }).ConfigureAwait(false)).GetBool("is_deleted");
        }

        public async Task<WorldFact> SetWorldFactAsync(string key, string text, double salience = 0.5)
        {
            PackMap result = await RequestAsync("world.set", new PackMap { { "key", key }, { "text", text }, { "salience", salience } }).ConfigureAwait(false);
            return WorldFact.FromMap(result.GetMap("fact"));
        }

        /// <summary>All facts, or the one under <paramref name="key"/> (empty when unknown).</summary>
        public async Task<List<WorldFact>> GetWorldFactsAsync(string key = null)
        {
            PackMap fields = key == null ? new PackMap() : new PackMap { { "key", key } };
            List<WorldFact> facts = new List<WorldFact>();
            foreach (PackMap fact in Character.Maps((await RequestAsync("world.get", fields).ConfigureAwait(false)).GetList("facts")))
            {
                facts.Add(WorldFact.FromMap(fact));
            }
            return facts;
        }

        public async Task<bool> DeleteWorldFactAsync(string key)
        {
            return (await RequestAsync("world.delete", new PackMap { { "key", key } }).ConfigureAwait(false)).GetBool("is_deleted");
        }

        /// <summary>Registers a template given as a map (see schemas/protocol/template.json); returns its name.</summary>
        public async Task<string> RegisterTemplateAsync(PackMap template)
        {
            return (await RequestAsync("template.register", new PackMap { { "template", template } }).ConfigureAwait(false)).GetString("name");
        }

        /// <summary>Registers a template given as JSON text (e.g. a TextAsset's text).</summary>
        public Task<string> RegisterTemplateJsonAsync(string json)
        {
            PackMap template = Json.Parse(json) as PackMap;
            if (template == null)
            {
                throw new ArgumentException("a template is a JSON object");
            }
            return RegisterTemplateAsync(template);
        }

        /// <summary>The registered templates, as maps.</summary>
        public async Task<List<PackMap>> ListTemplatesAsync()
        {
            return new List<PackMap>(Character.Maps((await RequestAsync("template.list").ConfigureAwait(false)).GetList("templates")));
        }

        /// <summary>Starts a say: drafts go to <see cref="SayOptions.OnDraft"/>, the reply to <see cref="SayRequest.Task"/>.</summary>
        public SayRequest Say(string characterId, string speakerId, string text, string template, SayOptions options = null)
        {
            return StartSay(characterId, speakerId, "text", text, template, options);
        }

        /// <summary>
        /// Protocol 1.1: the character reacts to a game event ("Aria walks into the forge"), caused
        /// by <paramref name="causerId"/> (a speaker or another character) or by no one (null). An
        /// event while the character answers another gets that reply (<see cref="SayResult.Coalesced"/>);
        /// one within the server's <c>min_event_interval_ms</c> fails with code <c>rate_limited</c>.
        /// </summary>
        public SayRequest React(string characterId, string eventText, string template, string causerId = null, SayOptions options = null)
        {
            return StartSay(characterId, causerId, "event", eventText, template, options);
        }

        public Task<SayResult> ReactAsync(string characterId, string eventText, string template, string causerId = null, SayOptions options = null)
        {
            return React(characterId, eventText, template, causerId, options).Task;
        }

        private SayRequest StartSay(string characterId, string speakerId, string textField, string text, string template, SayOptions options)
        {
            options = options ?? new SayOptions();
            PackMap fields = new PackMap
            {
                { "character_id", characterId }, { textField, text },
                { "template", template }, { "priority", options.Priority }, { "stream", options.Stream },
            };
            if (speakerId != null)
            {
                fields["speaker_id"] = speakerId;
            }
            if (options.Seed.HasValue)
            {
                fields["seed"] = options.Seed.Value;
            }
            if (options.DeadlineMs.HasValue)
            {
                fields["deadline_ms"] = options.DeadlineMs.Value;
            }
            if (options.Values != null && options.Values.Count > 0)
            {
                PackMap values = new PackMap();
                foreach (KeyValuePair<string, string> value in options.Values)
                {
                    values[value.Key] = value.Value;
                }
                fields["values"] = values;
            }
            if (options.Options != null && options.Options.Count > 0)
            {
                PackMap offered = new PackMap();
                foreach (KeyValuePair<string, List<string>> slot in options.Options)
                {
                    offered[slot.Key] = new List<object>(slot.Value.ConvertAll(delegate(string option) { return (object)option; }));
                }
                fields["options"] = offered;
            }
            Action<Draft> onDraft = options.OnDraft;
            Action<PackMap> onEvent = null;
            if (onDraft != null)
            {
                onEvent = delegate(PackMap message)
                {
                    if (message.GetString("event") == "draft" && message.GetMap("draft") != null)
                    {
                        onDraft(Draft.FromEvent(message));
                    }
                };
            }
            string requestId;
            Task<PackMap> reply = Submit("say", fields, options.Timeout, onEvent, out requestId);
            Task<SayResult> result = reply.ContinueWith(
                delegate(Task<PackMap> done) { return SayResult.FromMap(done.GetAwaiter().GetResult(), requestId); },
                CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
            return new SayRequest(this, requestId, result);
        }

        public Task<SayResult> SayAsync(string characterId, string speakerId, string text, string template, SayOptions options = null)
        {
            return Say(characterId, speakerId, text, template, options).Task;
        }

        /// <summary>Cancels an outstanding say of this client.</summary>
        public Task CancelAsync(string requestId)
        {
            return RequestAsync("cancel", new PackMap { { "target_request_id", requestId } });
        }

        /// <summary>Saves the whole world, or one character when <paramref name="characterId"/> is given.</summary>
        public async Task<SnapshotInfo> SaveSnapshotAsync(string name, string characterId = null)
        {
            PackMap fields = new PackMap { { "name", name } };
            if (characterId != null)
            {
                fields["character_id"] = characterId;
            }
            return SnapshotInfo.FromMap((await RequestAsync("snapshot.save", fields).ConfigureAwait(false)).GetMap("snapshot"));
        }

        public async Task<SnapshotInfo> LoadSnapshotAsync(string name)
        {
            return SnapshotInfo.FromMap((await RequestAsync("snapshot.load", new PackMap { { "name", name } }).ConfigureAwait(false)).GetMap("snapshot"));
        }

        public async Task<List<SnapshotInfo>> ListSnapshotsAsync()
        {
            List<SnapshotInfo> snapshots = new List<SnapshotInfo>();
            foreach (PackMap snapshot in Character.Maps((await RequestAsync("snapshot.list").ConfigureAwait(false)).GetList("snapshots")))
            {
                snapshots.Add(SnapshotInfo.FromMap(snapshot));
            }
            return snapshots;
        }

        public Task DeleteSnapshotAsync(string name)
        {
            return RequestAsync("snapshot.delete", new PackMap { { "name", name } });
        }

        /// <summary>Protocol 1.1: a save slot's bytes, for the game's own save file (keep them as they are).</summary>
        public async Task<byte[]> ExportSnapshotAsync(string name)
        {
            PackMap result = await RequestAsync("snapshot.export", new PackMap { { "name", name } }).ConfigureAwait(false);
            return SnapshotChunks.FromChunks(result.GetStrings("chunks") ?? new List<string>());
        }

        /// <summary>Protocol 1.1: stores bytes from <see cref="ExportSnapshotAsync"/> as a slot (under
        /// <paramref name="name"/>, default its own); <see cref="LoadSnapshotAsync"/> then applies it.
        /// A damaged or foreign payload fails with code snapshot_error and changes nothing.</summary>
        public async Task<SnapshotInfo> ImportSnapshotAsync(byte[] data, string name = null)
        {
            PackMap fields = new PackMap { { "chunks", SnapshotChunks.ToChunks(data) } };
            if (name != null)
            {
                fields["name"] = name;
            }
            return SnapshotInfo.FromMap((await RequestAsync("snapshot.import", fields).ConfigureAwait(false)).GetMap("snapshot"));
        }

        /// <summary>Engine and server counters: the result's "engine" and "server" maps.</summary>
        public Task<PackMap> StatsAsync()
        {
            return RequestAsync("stats");
        }

        /// <summary>Sends any op; completes with the result map or fails with a <see cref="ServerException"/>.</summary>
        public Task<PackMap> RequestAsync(string op, PackMap fields = null, TimeSpan? timeout = null)
        {
            string requestId;
            return Submit(op, fields ?? new PackMap(), timeout, null, out requestId);
        }

        public void Dispose()
        {
            if (_isDisposed)
            {
                return;
            }
            _isDisposed = true;
            _connection.Dispose();
            List<Pending> left;
            lock (_pending)
            {
                left = new List<Pending>(_pending.Values);
                _pending.Clear();
            }
            foreach (Pending pending in left)
            {
                Finish(pending, null, new ClientClosedException("the client was disposed"));
            }
        }

        // -- plumbing ----------------------------------------------------------------------------

        /// <summary>Sends a message exactly as given (tests use it to send what a correct client never would).</summary>
        internal Task<PackMap> SubmitMessage(PackMap message, string requestId)
        {
            return Send(requestId, message, "raw", _options.RequestTimeout, null);
        }

        private Task<PackMap> Submit(string op, PackMap fields, TimeSpan? timeout, Action<PackMap> onEvent, out string requestId)
        {
            requestId = _idPrefix + Interlocked.Increment(ref _nextId);
            PackMap message = new PackMap { { "protocol_version", Protocol.Version }, { "op", op }, { "request_id", requestId } };
            foreach (KeyValuePair<string, object> field in fields)
            {
                message[field.Key] = field.Value;
            }
            return Send(requestId, message, op, timeout ?? _options.RequestTimeout, onEvent);
        }

        private Task<PackMap> Send(string requestId, PackMap message, string op, TimeSpan timeout, Action<PackMap> onEvent)
        {
            if (_isDisposed)
            {
                throw new ClientClosedException("the client is disposed", requestId);
            }
            byte[] body = MsgPack.Encode(message);  // throws ArgumentException on a value the protocol cannot carry
            // A pending request exists with its timer or not at all: the timer is made (not yet
            // running) before the request is published, and a send that throws takes it back.
            Pending pending = new Pending
            {
                Op = op,
                Completion = new TaskCompletionSource<PackMap>(TaskCreationOptions.RunContinuationsAsynchronously),
                OnEvent = onEvent,
                Timer = new Timer(OnTimeout, requestId, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan),
            };
            lock (_pending)
            {
                _pending[requestId] = pending;
            }
            pending.Timer.Change(timeout, Timeout.InfiniteTimeSpan);
            try
            {
                _connection.Send(requestId, body);
            }
            catch (Exception)
            {
                Pending taken = Take(requestId);
                if (taken != null)
                {
                    taken.Timer.Dispose();
                }
                throw;
            }
            return pending.Completion.Task;
        }

        private Pending Take(string requestId)
        {
            lock (_pending)
            {
                Pending pending;
                if (requestId == null || !_pending.TryGetValue(requestId, out pending))
                {
                    return null;
                }
                _pending.Remove(requestId);
                return pending;
            }
        }

        private static void Finish(Pending pending, PackMap result, Exception error)
        {
            if (pending.Timer != null)
            {
                pending.Timer.Dispose();
            }
            if (error != null)
            {
                pending.Completion.TrySetException(error);
            }
            else
            {
                pending.Completion.TrySetResult(result);
            }
        }

        private void OnTimeout(object state)
        {
            string requestId = (string)state;
            Pending pending = Take(requestId);
            if (pending == null)
            {
                return;
            }
            bool isNeverSent = _connection.Withdraw(requestId);  // timed out before it left: it never runs
            Finish(pending, null, new NpcTimeoutException(pending.Op + " got no reply within its timeout", requestId));
            if (pending.Op == "say" && !isNeverSent && !_isDisposed)
            {
                SendCancel(requestId);
            }
        }

        private void OnMessage(PackMap message)
        {
            string requestId = message.GetString("request_id");
            string type = message.GetString("type");
            if (type == "event")
            {
                Pending pending;
                lock (_pending)
                {
                    _pending.TryGetValue(requestId ?? "", out pending);
                }
                if (pending != null && pending.OnEvent != null)
                {
                    try
                    {
                        pending.OnEvent(message);
                    }
                    catch (Exception error)
                    {
                        // Fails this request only (and stops its work on the server); the IO thread serves the rest.
                        FailRequest(requestId, new NpcEngineException(LocalCodes.CallbackFailed, "a draft callback threw: " + error.Message, requestId, error));
                    }
                }
                return;
            }
            if (type != "reply")
            {
                return;  // a kind a newer server may send; ignored by the protocol's rule
            }
            Pending waiting = Take(requestId);
            if (message.GetBool("ok"))
            {
                if (waiting != null)
                {
                    Finish(waiting, message.GetMap("result") ?? new PackMap(), null);
                }
                return;
            }
            ServerException error2 = ToServerError(message.GetMap("error") ?? new PackMap(), requestId);
            if (waiting != null)
            {
                Finish(waiting, null, error2);
            }
            else if (requestId == null)
            {
                RaiseError(error2);  // the server could not read one of our messages
            }
        }

        private void FailRequest(string requestId, NpcEngineException error)
        {
            Pending pending = Take(requestId);
            if (pending == null)
            {
                return;
            }
            Finish(pending, null, error);
            if (pending.Op == "say" && !_isDisposed)
            {
                SendCancel(requestId);
            }
        }

        private void SendCancel(string requestId)
        {
            // Frees the server's work; the cancel's own reply is ignored.
            PackMap cancel = new PackMap { { "protocol_version", Protocol.Version }, { "op", "cancel" }, { "request_id", requestId + ":cancel" }, { "target_request_id", requestId } };
            try
            {
                _connection.Send(null, MsgPack.Encode(cancel));
            }
            catch (ClientClosedException)
            {
            }
        }

        internal static ServerException ToServerError(PackMap error, string requestId)
        {
            string code = error.GetString("code", "internal");
            string text = error.GetString("message", "");
            PackMap details = error.GetMap("details");
            if (code == "busy")
            {
                return new BusyException(text, details, requestId);
            }
            if (code == "state_changed")
            {
                return new StateChangedException(text, details, requestId);
            }
            if (code == "unsupported_version")
            {
                return new VersionMismatchException(text, details, requestId);
            }
            return new ServerException(code, text, details, requestId);
        }

        private void OnReplyTooLarge(string requestId, ReplyTooLargeException error)
        {
            Pending pending = Take(requestId);
            if (pending != null)
            {
                Finish(pending, null, error);
            }
            else
            {
                RaiseError(error);
            }
        }

        private void OnConnected()
        {
            Action handler = Connected;
            if (handler != null)
            {
                handler();
            }
        }

        private void OnDisconnected(NpcEngineException reason, List<string> sentRequestIds)
        {
            foreach (string requestId in sentRequestIds)
            {
                Pending pending = Take(requestId);
                if (pending != null)
                {
                    Finish(pending, null, new ConnectionException(LocalCodes.ConnectionLost, reason.Message, requestId, reason));
                }
            }
            Action<NpcEngineException> handler = Disconnected;
            if (handler != null && !_isDisposed)
            {
                handler(reason);
            }
        }

        private void OnSendFailed(string requestId)
        {
            Pending pending = Take(requestId);
            if (pending != null)
            {
                Finish(pending, null, new ConnectionException(LocalCodes.ConnectionLost, "the connection dropped before the request was sent", requestId));
            }
        }

        private void RaiseError(NpcEngineException error)
        {
            Action<NpcEngineException> handler = Error;
            if (handler != null && !_isDisposed)
            {
                handler(error);
            }
        }
    }
}
