// A minimal stand-in for the UnityEditor types the package's Editor folder uses, so it compiles
// and its pure parts can be tested under mono. Never shipped (this folder ends in "~"). The
// dialogs record what they were asked instead of showing anything.
using System;
using System.Collections.Generic;

namespace UnityEditor
{
    public enum BuildTarget
    {
        StandaloneOSX = 2,
        StandaloneWindows = 5,
        iOS = 9,
        Android = 13,
        StandaloneWindows64 = 19,
        WebGL = 20,
        StandaloneLinux64 = 24,
    }

    [AttributeUsage(AttributeTargets.Class)]
    public sealed class InitializeOnLoadAttribute : Attribute
    {
    }

    [AttributeUsage(AttributeTargets.Method, AllowMultiple = true)]
    public sealed class MenuItem : Attribute
    {
        public string menuItem;

        public MenuItem(string itemName)
        {
            menuItem = itemName;
        }
    }

    public static class EditorUtility
    {
        public static string nextFolderPanelAnswer = "";
        public static readonly List<string> dialogs = new List<string>();

        public static string OpenFolderPanel(string title, string folder, string defaultName)
        {
            return nextFolderPanelAnswer;
        }

        public static bool DisplayDialog(string title, string message, string ok)
        {
            dialogs.Add(message);
            return true;
        }
    }

    public static class AssetDatabase
    {
        public static int numRefreshes;

        public static void Refresh()
        {
            numRefreshes++;
        }
    }
}

namespace UnityEditor.Build
{
    using UnityEditor.Build.Reporting;

    public interface IOrderedCallback
    {
        int callbackOrder { get; }
    }

    public interface IPreprocessBuildWithReport : IOrderedCallback
    {
        void OnPreprocessBuild(BuildReport report);
    }

    public interface IPostprocessBuildWithReport : IOrderedCallback
    {
        void OnPostprocessBuild(BuildReport report);
    }

    public class BuildFailedException : Exception
    {
        public BuildFailedException(string message) : base(message) { }
    }
}

namespace UnityEditor.Build.Reporting
{
    public struct BuildSummary
    {
        public BuildTarget platform;
        public string outputPath;
    }

    public sealed class BuildReport
    {
        public BuildSummary summary;

        public BuildReport(BuildTarget platform, string outputPath)  // Unity's has no public constructor
        {
            summary = new BuildSummary { platform = platform, outputPath = outputPath };
        }
    }
}
