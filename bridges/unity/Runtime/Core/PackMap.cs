using System;
using System.Collections;
using System.Collections.Generic;

namespace NpcEngine
{
    /// <summary>
    /// A msgpack map with string keys that keeps insertion order (the protocol encodes maps in
    /// insertion order, and <see cref="Dictionary{TKey,TValue}"/> does not promise one).
    /// Values are null, bool, long, double, string, <see cref="List{T}"/> of object, or PackMap.
    /// </summary>
    public sealed class PackMap : IEnumerable<KeyValuePair<string, object>>
    {
        private readonly List<string> _keys = new List<string>();
        private readonly Dictionary<string, object> _values = new Dictionary<string, object>(StringComparer.Ordinal);

        public int Count { get { return _keys.Count; } }

        public IReadOnlyList<string> Keys { get { return _keys; } }

        /// <summary>Sets a value; a new key goes last, an existing key keeps its place.</summary>
        public object this[string key]
        {
            get
            {
                object value;
                if (!_values.TryGetValue(key, out value))
                {
                    throw new KeyNotFoundException("no field '" + key + "'");
                }
                return value;
            }
            set
            {
                if (key == null)
                {
                    throw new ArgumentNullException("key");
                }
                if (!_values.ContainsKey(key))
                {
                    _keys.Add(key);
                }
                _values[key] = value;
            }
        }

        /// <summary>Collection-initializer support: <c>new PackMap { { "op", "ping" } }</c>.</summary>
        public void Add(string key, object value)
        {
            this[key] = value;
        }

        public bool ContainsKey(string key)
        {
            return _values.ContainsKey(key);
        }

        public bool TryGetValue(string key, out object value)
        {
            return _values.TryGetValue(key, out value);
        }

        public bool Remove(string key)
        {
            if (!_values.Remove(key))
            {
                return false;
            }
            _keys.Remove(key);
            return true;
        }

        public object GetOrNull(string key)
        {
            object value;
            return _values.TryGetValue(key, out value) ? value : null;
        }

        public string GetString(string key, string fallback = null)
        {
            string text = GetOrNull(key) as string;
            return text ?? fallback;
        }

        public long GetLong(string key, long fallback = 0)
        {
            object value = GetOrNull(key);
            if (value is long)
            {
                return (long)value;
            }
            if (value is double)
            {
                return (long)(double)value;
            }
            return fallback;
        }

        public double GetDouble(string key, double fallback = 0.0)
        {
            object value = GetOrNull(key);
            if (value is double)
            {
                return (double)value;
            }
            if (value is long)
            {
                return (long)value;
            }
            return fallback;
        }

        public double? GetNullableDouble(string key)
        {
            object value = GetOrNull(key);
            if (value is double || value is long)
            {
                return GetDouble(key);
            }
            return null;
        }

        public bool GetBool(string key, bool fallback = false)
        {
            object value = GetOrNull(key);
            return value is bool ? (bool)value : fallback;
        }

        public PackMap GetMap(string key)
        {
            return GetOrNull(key) as PackMap;
        }

        public List<object> GetList(string key)
        {
            return GetOrNull(key) as List<object>;
        }

        public List<string> GetStrings(string key)
        {
            List<string> strings = new List<string>();
            List<object> items = GetList(key);
            if (items != null)
            {
                foreach (object item in items)
                {
                    string text = item as string;
                    if (text != null)
                    {
                        strings.Add(text);
                    }
                }
            }
            return strings;
        }

        public IEnumerator<KeyValuePair<string, object>> GetEnumerator()
        {
            foreach (string key in _keys)
            {
                yield return new KeyValuePair<string, object>(key, _values[key]);
            }
        }

        IEnumerator IEnumerable.GetEnumerator()
        {
            return GetEnumerator();
        }
    }
}
