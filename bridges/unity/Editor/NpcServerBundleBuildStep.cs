using System.IO;
using UnityEditor;
using UnityEditor.Build;
using UnityEditor.Build.Reporting;
using UnityEngine;

namespace NpcEngine.Editor
{
    /// <summary>
    /// Checks the server bundle in StreamingAssets/npc-engine before a build: a bundle for another
    /// OS than the build's (a bundle runs where it was built) or an incomplete one fails the build
    /// with the reason, instead of a game whose NPCs never answer. After a macOS or Linux build it
    /// sets the server's executable bit in the build's copy. Without a bundle it does nothing.
    /// </summary>
    public sealed class NpcServerBundleBuildStep : IPreprocessBuildWithReport, IPostprocessBuildWithReport
    {
        public int callbackOrder { get { return 0; } }

        public void OnPreprocessBuild(BuildReport report)
        {
            string problem = ProblemFor(Application.streamingAssetsPath, report.summary.platform);
            if (problem != null)
            {
                throw new BuildFailedException(problem);
            }
        }

        public void OnPostprocessBuild(BuildReport report)
        {
            string os = OsOf(report.summary.platform);
            string built = BuiltStreamingAssets(report.summary.outputPath, os);
            string folder = built == null ? null : Path.Combine(built, NpcServerBundle.DefaultFolder);
            if (folder != null && os != "windows" && File.Exists(Path.Combine(folder, NpcServerBundle.ManifestFile)))
            {
                NpcServerBundle.MakeExecutable(NpcServerBundle.Read(folder).ExecutablePath);
            }
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
                return NpcServerBundle.Read(folder).ProblemFor(os);
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
}
