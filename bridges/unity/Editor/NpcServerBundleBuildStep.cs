using System.IO;
using UnityEditor;
using UnityEditor.Build;
using UnityEditor.Build.Reporting;
using UnityEngine;

namespace NpcEngine.Editor
{
    /// <summary>
    /// Checks the server bundle in StreamingAssets/npc-engine before a build: a bundle for another
    /// OS or CPU architecture than the build's (a bundle runs where it was built) or an incomplete
    /// one fails the build with the reason, instead of a game whose NPCs never answer. A build for a
    /// target that runs no server (iOS, Android, WebGL, consoles) leaves the bundle out: it is held
    /// in Library/NpcEngine during the build and put back after it (or, after a build that failed,
    /// when the editor next loads scripts). After a macOS or Linux build it sets the server's
    /// executable bit in the build's copy. Without a bundle it does nothing.
    /// </summary>
    public sealed class NpcServerBundleBuildStep : IPreprocessBuildWithReport, IPostprocessBuildWithReport
    {
        /// <summary>Where a bundle waits while a build leaves it out (under the project, never in a build).</summary>
        public static string HoldRoot = Path.Combine(Directory.GetCurrentDirectory(), "Library", "NpcEngine", "held-during-build");

        public int callbackOrder { get { return 0; } }

        public void OnPreprocessBuild(BuildReport report)
        {
            if (OsOf(report.summary.platform) == null)
            {
                Hold(Application.streamingAssetsPath);
                return;
            }
            string problem = ProblemFor(Application.streamingAssetsPath, report.summary.platform);
            if (problem != null)
            {
                throw new BuildFailedException(problem);
            }
        }

        public void OnPostprocessBuild(BuildReport report)
        {
            Restore(Application.streamingAssetsPath);
            string os = OsOf(report.summary.platform);
            string built = BuiltStreamingAssets(report.summary.outputPath, os);
            string folder = built == null ? null : Path.Combine(built, NpcServerBundle.DefaultFolder);
            if (folder != null && os != "windows" && File.Exists(Path.Combine(folder, NpcServerBundle.ManifestFile)))
            {
                NpcServerBundle.MakeExecutable(NpcServerBundle.Read(folder).ExecutablePath);
            }
        }

        /// <summary>Moves the bundle (and its .meta) out of <paramref name="streamingAssets"/> into
        /// <see cref="HoldRoot"/>; true when there was one.</summary>
        public static bool Hold(string streamingAssets)
        {
            string folder = Path.Combine(streamingAssets, NpcServerBundle.DefaultFolder);
            if (!Directory.Exists(folder))
            {
                return false;
            }
            Restore(streamingAssets);  // a bundle held by an earlier build that never finished goes back first
            Directory.CreateDirectory(HoldRoot);
            Directory.Move(folder, Path.Combine(HoldRoot, NpcServerBundle.DefaultFolder));
            if (File.Exists(folder + ".meta"))
            {
                File.Move(folder + ".meta", Path.Combine(HoldRoot, NpcServerBundle.DefaultFolder + ".meta"));
            }
            Debug.Log("npc-engine: this build target runs no server; the bundle is left out of the build and put back after it");
            return true;
        }

        /// <summary>Puts a held bundle back into <paramref name="streamingAssets"/>; true when one was held.</summary>
        public static bool Restore(string streamingAssets)
        {
            string held = Path.Combine(HoldRoot, NpcServerBundle.DefaultFolder);
            string folder = Path.Combine(streamingAssets, NpcServerBundle.DefaultFolder);
            if (!Directory.Exists(held) || Directory.Exists(folder))
            {
                return false;  // nothing held, or a bundle was imported meanwhile (the held one stays, unharmed)
            }
            Directory.Move(held, folder);
            if (File.Exists(held + ".meta") && !File.Exists(folder + ".meta"))
            {
                File.Move(held + ".meta", folder + ".meta");
            }
            return true;
        }

        /// <summary>Why the bundle under <paramref name="streamingAssets"/> cannot ship in a build for
        /// <paramref name="target"/>, or null (it fits, there is none, or the target runs no server).</summary>
        public static string ProblemFor(string streamingAssets, BuildTarget target)
        {
            string os = OsOf(target);
            string folder = Path.Combine(streamingAssets, NpcServerBundle.DefaultFolder);
            if (os == null || !Directory.Exists(folder))
            {
                return null;
            }
            try
            {
                return NpcServerBundle.Read(folder).ProblemFor(os, MachineOf(target));
            }
            catch (NpcEngineException error)
            {
                return error.Message;
            }
        }

        /// <summary>The OS a desktop build target runs on, in a bundle's words; null for the others.</summary>
        public static string OsOf(BuildTarget target)
        {
            switch (target)
            {
                case BuildTarget.StandaloneWindows:
                case BuildTarget.StandaloneWindows64:
                    return "windows";
                case BuildTarget.StandaloneOSX:
                    return "macos";
                case BuildTarget.StandaloneLinux64:
                    return "linux";
                default:
                    return null;
            }
        }

        /// <summary>The CPU architecture a desktop build target runs on, or null where the build's
        /// settings decide (macOS: Intel, Apple silicon or both; not checked).</summary>
        public static string MachineOf(BuildTarget target)
        {
            switch (target)
            {
                case BuildTarget.StandaloneWindows:
                    return "x86";
                case BuildTarget.StandaloneWindows64:
                case BuildTarget.StandaloneLinux64:
                    return "x86_64";
                default:
                    return null;
            }
        }

        /// <summary>Where a player build keeps StreamingAssets: beside the executable in Game_Data on
        /// Windows and Linux, inside the app bundle on macOS.</summary>
        public static string BuiltStreamingAssets(string outputPath, string os)
        {
            if (string.IsNullOrEmpty(outputPath) || os == null)
            {
                return null;
            }
            if (os == "macos")
            {
                return Path.Combine(outputPath, "Contents", "Resources", "Data", "StreamingAssets");
            }
            string dataFolder = Path.GetFileNameWithoutExtension(outputPath) + "_Data";
            return Path.Combine(Path.GetDirectoryName(outputPath) ?? "", dataFolder, "StreamingAssets");
        }
    }

    /// <summary>After a build that failed between holding the bundle and putting it back, the next
    /// script load puts it back.</summary>
    [InitializeOnLoad]
    internal static class NpcServerBundleRestoreOnLoad
    {
        static NpcServerBundleRestoreOnLoad()
        {
            NpcServerBundleBuildStep.Restore(Application.streamingAssetsPath);
        }
    }
}
