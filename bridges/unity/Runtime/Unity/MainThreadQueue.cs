using System;
using System.Collections.Concurrent;

namespace NpcEngine.Unity
{
    /// <summary>
    /// Hands work from the client's IO thread to Unity's main thread: IO threads enqueue, the
    /// main thread runs a bounded number of items per frame in Update().
    /// </summary>
    public sealed class MainThreadQueue
    {
        private readonly ConcurrentQueue<Action> _actions = new ConcurrentQueue<Action>();

        public int Count { get { return _actions.Count; } }

        public void Post(Action action)
        {
            _actions.Enqueue(action);
        }

        /// <summary>Runs up to <paramref name="maxActions"/> queued actions; returns how many ran.</summary>
        public int Drain(int maxActions, Action<Exception> onError)
        {
            int numRun = 0;
            Action action;
            while (numRun < maxActions && _actions.TryDequeue(out action))
            {
                numRun++;
                try
                {
                    action();
                }
                catch (Exception error)
                {
                    onError(error);
                }
            }
            return numRun;
        }
    }
}
