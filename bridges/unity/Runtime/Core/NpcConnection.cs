using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.IO;
using System.Net.Sockets;
using System.Threading;

namespace NpcEngine
{
    /// <summary>
    /// The socket side of a client: an IO thread that connects, reconnects with backoff and reads
    /// continuously (so heartbeats are answered however busy the game is), and a writer thread
    /// that sends queued messages. Callbacks run on these threads; keep them short.
    /// </summary>
    internal sealed class NpcConnection : IDisposable
    {
        private sealed class Outgoing
        {
            public string RequestId;
            public byte[] Body;
            public int State;  // Queued, Taken (the writer sends it) or Withdrawn (never sent)
        }

        private const int Queued = 0, Taken = 1, Withdrawn = 2;

        private sealed class Session
        {
            public TcpClient Tcp;
            public ZmtpStream Zmtp;
            public readonly HashSet<string> SentRequestIds = new HashSet<string>();
            public bool IsOver;

            public bool MarkSent(string requestId)
            {
                lock (SentRequestIds)
                {
                    if (IsOver)
                    {
                        return false;
                    }
                    SentRequestIds.Add(requestId);
                    return true;
                }
            }

            public List<string> End()
            {
                lock (SentRequestIds)
                {
                    IsOver = true;
                    return new List<string>(SentRequestIds);
                }
            }

            public void Abort()
            {
                try
                {
                    Tcp.Close();
                }
                catch (Exception)
                {
                }
            }
        }

        private readonly NpcClientOptions _options;
        private readonly string _host;
        private readonly int _port;
        private readonly ConcurrentQueue<Outgoing> _outbox = new ConcurrentQueue<Outgoing>();
        private readonly ConcurrentDictionary<string, Outgoing> _queued = new ConcurrentDictionary<string, Outgoing>();
        private readonly AutoResetEvent _writerSignal = new AutoResetEvent(false);
        private readonly ManualResetEvent _closing = new ManualResetEvent(false);
        private readonly Thread _ioThread;
        private readonly Thread _writerThread;
        private volatile Session _session;
        private volatile TcpClient _connecting;
        private volatile bool _isClosed;
        private int _numConnects;

        /// <summary>A message arrived (IO thread).</summary>
        public Action<PackMap> MessageReceived;
        /// <summary>A reply was over the cap and skipped: (request id or null, error).</summary>
        public Action<string, ReplyTooLargeException> ReplyTooLarge;
        /// <summary>The handshake finished.</summary>
        public Action Connected;
        /// <summary>The connection ended: the reason, and the requests sent on it.</summary>
        public Action<NpcEngineException, List<string>> Disconnected;
        /// <summary>Something went wrong that belongs to no request (connect failure, malformed frame).</summary>
        public Action<NpcEngineException> ErrorRaised;
        /// <summary>A queued message could not be sent because its connection ended first.</summary>
        public Action<string> SendFailed;

        public NpcConnection(NpcClientOptions options)
        {
            _options = options;
            Protocol.ParseEndpoint(options.Endpoint, out _host, out _port);
            _ioThread = new Thread(RunIo) { IsBackground = true, Name = "npc-engine-io" };
            _writerThread = new Thread(RunWriter) { IsBackground = true, Name = "npc-engine-writer" };
        }

        public bool IsConnected { get { return _session != null; } }

        /// <summary>Successful handshakes so far (1 after the first connect; +1 per reconnect).</summary>
        public int NumConnects { get { return Volatile.Read(ref _numConnects); } }

        public int NumPingsAnswered
        {
            get
            {
                Session session = _session;
                return session == null ? 0 : session.Zmtp.NumPingsAnswered;
            }
        }

        public bool AreThreadsAlive { get { return _ioThread.IsAlive || _writerThread.IsAlive; } }

        public void Start()
        {
            _ioThread.Start();
            _writerThread.Start();
        }

        /// <summary>Queues a message; it is sent now if connected, else after the next connect.</summary>
        public void Send(string requestId, byte[] body)
        {
            if (_isClosed)
            {
                throw new ClientClosedException("the client is disposed", requestId);
            }
            Outgoing item = new Outgoing { RequestId = requestId, Body = body };
            if (requestId != null)
            {
                _queued.TryAdd(requestId, item);  // a repeated id stays sendable, only not withdrawable
            }
            _outbox.Enqueue(item);
            _writerSignal.Set();
        }

        /// <summary>Takes a queued message back so it is never sent (its request failed first, e.g.
        /// timed out while disconnected); false when it is already on its way or unknown.</summary>
        public bool Withdraw(string requestId)
        {
            Outgoing item;
            return requestId != null && _queued.TryRemove(requestId, out item)
                && Interlocked.CompareExchange(ref item.State, Withdrawn, Queued) == Queued;
        }

        /// <summary>Drops the current connection (as if the network failed); the IO thread reconnects.</summary>
        public void DropConnection()
        {
            Session session = _session;
            if (session != null)
            {
                session.Abort();
            }
        }

        /// <summary>Closes the socket and stops both threads; never waits longer than <paramref name="joinTimeout"/>.</summary>
        public void Dispose()
        {
            Close(TimeSpan.FromSeconds(1));
        }

        public void Close(TimeSpan joinTimeout)
        {
            if (_isClosed)
            {
                return;
            }
            _isClosed = true;
            _closing.Set();
            _writerSignal.Set();
            TcpClient connecting = _connecting;
            if (connecting != null)
            {
                connecting.Close();
            }
            DropConnection();
            if (_ioThread.IsAlive)
            {
                _ioThread.Join(joinTimeout);
            }
            if (_writerThread.IsAlive)
            {
                _writerThread.Join(joinTimeout);
            }
        }

        private void RunIo()
        {
            int numFailures = 0;
            while (!_isClosed)
            {
                Session session;
                try
                {
                    session = Connect();
                }
                catch (Exception error)
                {
                    if (_isClosed)
                    {
                        break;
                    }
                    numFailures++;
                    Raise(ErrorRaised, ToConnectError(error));
                    _closing.WaitOne(Backoff(numFailures));
                    continue;
                }
                numFailures = 0;
                _session = session;
                Interlocked.Increment(ref _numConnects);
                Invoke(Connected);
                _writerSignal.Set();
                NpcEngineException reason = ReadUntilLost(session);
                _session = null;
                session.Abort();
                List<string> sent = session.End();
                if (Disconnected != null)
                {
                    Disconnected(reason, sent);
                }
                if (!_isClosed)
                {
                    _closing.WaitOne(_options.MinReconnectDelay);
                }
            }
        }

        private Session Connect()
        {
            TcpClient tcp = new TcpClient();
            _connecting = tcp;
            try
            {
                tcp.NoDelay = true;
                IAsyncResult pending = tcp.BeginConnect(_host, _port, null, null);
                if (!pending.AsyncWaitHandle.WaitOne(_options.ConnectTimeout))
                {
                    throw new TimeoutException("no TCP connection within " + _options.ConnectTimeout.TotalSeconds + " s");
                }
                tcp.EndConnect(pending);
                NetworkStream stream = tcp.GetStream();
                stream.ReadTimeout = (int)_options.ConnectTimeout.TotalMilliseconds;
                ZmtpStream zmtp = new ZmtpStream(stream);
                zmtp.Handshake();
                stream.ReadTimeout = (int)_options.HeartbeatTimeout.TotalMilliseconds;
                return new Session { Tcp = tcp, Zmtp = zmtp };
            }
            catch (Exception)
            {
                tcp.Close();
                throw;
            }
            finally
            {
                _connecting = null;
            }
        }

        private NpcEngineException ReadUntilLost(Session session)
        {
            try
            {
                while (true)
                {
                    ZmtpIncoming incoming = session.Zmtp.ReadMessage(_options.MaxReplyBytes);
                    if (incoming.Kind == ZmtpReadKind.Oversized)
                    {
                        ReplyTooLargeException error = new ReplyTooLargeException(incoming.NumBytes, _options.MaxReplyBytes, incoming.RequestId);
                        if (ReplyTooLarge != null)
                        {
                            ReplyTooLarge(incoming.RequestId, error);
                        }
                        continue;
                    }
                    if (incoming.Kind == ZmtpReadKind.Multipart)
                    {
                        Raise(ErrorRaised, new ProtocolViolationException(LocalCodes.MalformedFrame, "the server sent a multi-frame message; it was skipped"));
                        continue;
                    }
                    PackMap message;
                    try
                    {
                        message = MsgPack.DecodeMap(incoming.Body, _options.DecodeLimits);
                    }
                    catch (MsgPackException error)
                    {
                        Raise(ErrorRaised, new ProtocolViolationException(LocalCodes.BadMessage, "a message from the server could not be read: " + error.Message));
                        continue;
                    }
                    if (MessageReceived != null)
                    {
                        MessageReceived(message);
                    }
                }
            }
            catch (NpcEngineException error)
            {
                if (!_isClosed)
                {
                    Raise(ErrorRaised, error);
                }
                return error;
            }
            catch (Exception error)
            {
                string why = _isClosed ? "the client was disposed" : Describe(error);
                return new ConnectionException(LocalCodes.ConnectionLost, "lost the connection to " + _options.Endpoint + ": " + why, null, error);
            }
        }

        private void RunWriter()
        {
            while (!_isClosed)
            {
                _writerSignal.WaitOne();
                Session session = _session;
                if (session == null)
                {
                    continue;
                }
                Outgoing item;
                while (!_isClosed && session == _session && _outbox.TryDequeue(out item))
                {
                    if (item.RequestId != null)
                    {
                        ((ICollection<KeyValuePair<string, Outgoing>>)_queued).Remove(
                            new KeyValuePair<string, Outgoing>(item.RequestId, item));
                    }
                    if (Interlocked.CompareExchange(ref item.State, Taken, Queued) != Queued)
                    {
                        continue;  // withdrawn: the game was told it failed, so it must not run
                    }
                    if (!session.MarkSent(item.RequestId))
                    {
                        if (SendFailed != null)
                        {
                            SendFailed(item.RequestId);
                        }
                        break;
                    }
                    try
                    {
                        session.Zmtp.WriteMessage(item.Body);
                    }
                    catch (Exception)
                    {
                        session.Abort();  // the reader sees it and reports the loss with this request in it
                        break;
                    }
                }
            }
        }

        private TimeSpan Backoff(int numFailures)
        {
            double ms = _options.MinReconnectDelay.TotalMilliseconds * Math.Pow(2, Math.Min(numFailures - 1, 16));
            return TimeSpan.FromMilliseconds(Math.Min(ms, _options.MaxReconnectDelay.TotalMilliseconds));
        }

        private NpcEngineException ToConnectError(Exception error)
        {
            NpcEngineException known = error as NpcEngineException;
            if (known != null)
            {
                return known;
            }
            return new ConnectionException(LocalCodes.ConnectFailed, "cannot connect to " + _options.Endpoint + ": " + Describe(error) + " (is `npc-engine serve` running?)", null, error);
        }

        private static string Describe(Exception error)
        {
            if (error is IOException && error.InnerException is SocketException)
            {
                error = error.InnerException;
            }
            SocketException socketError = error as SocketException;
            if (socketError != null && socketError.SocketErrorCode == SocketError.TimedOut)
            {
                return "the server was silent past the heartbeat timeout";
            }
            return error.Message;
        }

        private static void Raise(Action<NpcEngineException> handler, NpcEngineException error)
        {
            if (handler != null)
            {
                handler(error);
            }
        }

        private static void Invoke(Action handler)
        {
            if (handler != null)
            {
                handler();
            }
        }
    }
}
