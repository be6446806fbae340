// A minimal stand-in for the few UnityEngine types the package's Unity layer and sample use,
// so they compile (and the component's threading can be tested) under mono. Never shipped:
// this folder ends in "~", which Unity ignores. Signatures follow Unity's; bodies do the least
// that lets tests drive a component the way the player loop would.
using System;
using System.Collections.Generic;
using System.Reflection;

namespace UnityEngine
{
    public class Object
    {
        public string name;
    }

    public class GameObject : Object
    {
        private readonly List<Component> _components = new List<Component>();
        public Transform transform;

        public GameObject(string name)
        {
            this.name = name;
            transform = new Transform();
        }

        /// <summary>Adds a component and the ones it requires, then runs their Awake, as Unity
        /// does: every component is there before any Awake runs.</summary>
        public T AddComponent<T>() where T : Component, new()
        {
            T component = new T();
            component.gameObject = this;
            _components.Add(component);
            List<Component> added = new List<Component>();
            foreach (object attribute in typeof(T).GetCustomAttributes(typeof(RequireComponent), true))
            {
                Type required = ((RequireComponent)attribute).m_Type0;
                if (GetComponent(required) == null)
                {
                    Component extra = (Component)Activator.CreateInstance(required);
                    extra.gameObject = this;
                    _components.Add(extra);
                    added.Add(extra);
                }
            }
            added.Add(component);
            foreach (Component each in added)
            {
                StubPlayerLoop.Send(each, "Awake");
            }
            return component;
        }

        public Component GetComponent(Type type)
        {
            foreach (Component component in _components)
            {
                if (type.IsInstanceOfType(component))
                {
                    return component;
                }
            }
            return null;
        }
    }

    /// <summary>Test helper: calls a component's message method (Start, Update, OnDestroy...) like the player loop.</summary>
    public static class StubPlayerLoop
    {
        public static void Send(Component component, string message)
        {
            MethodInfo method = component.GetType().GetMethod(message, BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic);
            if (method != null)
            {
                method.Invoke(component, null);
            }
        }
    }

    public class Component : Object
    {
        public GameObject gameObject;

        public Transform transform { get { return gameObject.transform; } }

        public T GetComponent<T>() where T : Component
        {
            return (T)gameObject.GetComponent(typeof(T));
        }
    }

    public class Behaviour : Component
    {
        public bool enabled = true;
    }

    public class MonoBehaviour : Behaviour
    {
    }

    public class Transform : Component
    {
        public Vector3 position;
    }

    public class Camera : Behaviour
    {
        public static Camera main;

        public Vector3 WorldToScreenPoint(Vector3 position)
        {
            return position;
        }
    }

    public struct Vector3
    {
        public float x;
        public float y;
        public float z;

        public Vector3(float x, float y, float z)
        {
            this.x = x;
            this.y = y;
            this.z = z;
        }

        public static Vector3 up { get { return new Vector3(0f, 1f, 0f); } }

        public static Vector3 operator +(Vector3 a, Vector3 b)
        {
            return new Vector3(a.x + b.x, a.y + b.y, a.z + b.z);
        }

        public static Vector3 operator *(Vector3 a, float d)
        {
            return new Vector3(a.x * d, a.y * d, a.z * d);
        }
    }

    public struct Rect
    {
        public float x;
        public float y;
        public float width;
        public float height;

        public Rect(float x, float y, float width, float height)
        {
            this.x = x;
            this.y = y;
            this.width = width;
            this.height = height;
        }
    }

    public static class Application
    {
        public static string streamingAssetsPath = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "StreamingAssets");
        public static string persistentDataPath = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "npc persistent data");
        public static string dataPath = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "Assets");
        public static string temporaryCachePath = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "npc cache");
        public static bool isEditor = true;
    }

    public static class Screen
    {
        public static int height = 720;
        public static int width = 1280;
    }

    public enum EventType
    {
        MouseDown = 0,
        KeyDown = 4,
        Repaint = 7,
    }

    public enum KeyCode
    {
        None = 0,
        Return = 13,
    }

    public class Event
    {
        public static Event current;
        public EventType type;
        public KeyCode keyCode;
    }

    public static class GUI
    {
        public static void Box(Rect position, string text)
        {
        }

        public static void Label(Rect position, string text)
        {
        }

        public static string TextField(Rect position, string text)
        {
            return text;
        }

        public static bool Button(Rect position, string text)
        {
            return false;
        }
    }

    public static class Debug
    {
        public static readonly List<string> Messages = new List<string>();

        public static void Log(object message)
        {
            Messages.Add("log: " + message);
        }

        public static void LogWarning(object message)
        {
            Messages.Add("warning: " + message);
        }

        public static void LogError(object message)
        {
            Messages.Add("error: " + message);
        }

        public static void LogException(Exception exception)
        {
            Messages.Add("exception: " + exception);
        }
    }

    [AttributeUsage(AttributeTargets.Field)]
    public class PropertyAttribute : Attribute
    {
    }

    public sealed class TooltipAttribute : PropertyAttribute
    {
        public readonly string tooltip;

        public TooltipAttribute(string tooltip)
        {
            this.tooltip = tooltip;
        }
    }

    public sealed class HeaderAttribute : PropertyAttribute
    {
        public readonly string header;

        public HeaderAttribute(string header)
        {
            this.header = header;
        }
    }

    public sealed class TextAreaAttribute : PropertyAttribute
    {
        public TextAreaAttribute()
        {
        }

        public TextAreaAttribute(int minLines, int maxLines)
        {
        }
    }

    [AttributeUsage(AttributeTargets.Class)]
    public sealed class CreateAssetMenuAttribute : Attribute
    {
        public string fileName;
        public string menuName;
    }

    public class ScriptableObject : Object
    {
        public static T CreateInstance<T>() where T : ScriptableObject, new()
        {
            return new T();
        }
    }

    [AttributeUsage(AttributeTargets.Field)]
    public sealed class SerializeField : Attribute
    {
    }

    [AttributeUsage(AttributeTargets.Class)]
    public sealed class AddComponentMenu : Attribute
    {
        public AddComponentMenu(string menuName)
        {
        }
    }

    [AttributeUsage(AttributeTargets.Class, AllowMultiple = true)]
    public sealed class RequireComponent : Attribute
    {
        public Type m_Type0;

        public RequireComponent(Type requiredComponent)
        {
            m_Type0 = requiredComponent;
        }
    }
}

namespace UnityEngine.Events
{
    public class UnityEvent
    {
        private readonly List<Action> _listeners = new List<Action>();

        public void AddListener(Action call)
        {
            _listeners.Add(call);
        }

        public void Invoke()
        {
            foreach (Action listener in _listeners)
            {
                listener();
            }
        }
    }

    public abstract class UnityEvent<T0, T1>
    {
        private readonly List<Action<T0, T1>> _listeners = new List<Action<T0, T1>>();

        public void AddListener(Action<T0, T1> call)
        {
            _listeners.Add(call);
        }

        public void Invoke(T0 arg0, T1 arg1)
        {
            foreach (Action<T0, T1> listener in _listeners)
            {
                listener(arg0, arg1);
            }
        }
    }
}
