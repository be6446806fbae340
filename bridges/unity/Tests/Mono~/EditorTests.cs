using System;
using System.IO;
using NpcEngine.Editor;
using NUnit.Framework;
using UnityEditor;
using UnityEditor.Build;
using UnityEditor.Build.Reporting;
using UnityEngine;

namespace NpcEngine.Tests
{
    /// <summary>The Editor folder under the UnityEditor stub: the menu item imports a bundle, the
    /// build step fails a build that ships another OS's bundle and fixes the executable bit.</summary>
    [TestFixture]
    public class EditorTests
    {
        [SetUp]
        public void HoldBundlesInATemporaryFolder()
        {
            NpcServerBundleBuildStep.HoldRoot = ServerBundleTests.NewFolder();  // never the repository's own Library
        }

        [Test]
        public void TheMenuItemImportsTheChosenBundleAndSaysWhatWentWrong()
        {
            Application.streamingAssetsPath = ServerBundleTests.NewFolder();
            EditorUtility.nextFolderPanelAnswer = ServerBundleTests.MakeFakeBundle(ServerBundleTests.NewFolder(), "linux");
            int numRefreshes = AssetDatabase.numRefreshes;
            NpcServerBundleMenu.Import();
            string installed = Path.Combine(Application.streamingAssetsPath, NpcServerBundle.DefaultFolder);
            Assert.IsTrue(File.Exists(Path.Combine(installed, NpcServerBundle.ManifestFile)));
            Assert.AreEqual(numRefreshes + 1, AssetDatabase.numRefreshes, "Unity sees the new files");
            StringAssert.StartsWith("Imported the linux server bundle", EditorUtility.dialogs[EditorUtility.dialogs.Count - 1]);
            EditorUtility.nextFolderPanelAnswer = ServerBundleTests.NewFolder();  // not a bundle
            NpcServerBundleMenu.Import();
            StringAssert.Contains("no server bundle in", EditorUtility.dialogs[EditorUtility.dialogs.Count - 1]);
            Assert.IsTrue(File.Exists(Path.Combine(installed, NpcServerBundle.ManifestFile)), "the imported bundle stays");
        }

        [Test]
        public void TheBuildFailsWhenTheBundleIsForAnotherOs()
        {
            Application.streamingAssetsPath = ServerBundleTests.NewFolder();
            NpcServerBundleBuildStep step = new NpcServerBundleBuildStep();
            step.OnPreprocessBuild(new BuildReport(BuildTarget.StandaloneWindows64, "/b/Game.exe"));  // no bundle: nothing to check
            ServerBundleTests.MakeFakeBundle(Path.Combine(Application.streamingAssetsPath, NpcServerBundle.DefaultFolder), "linux");
            BuildFailedException error = Assert.Throws<BuildFailedException>(delegate
            {
                step.OnPreprocessBuild(new BuildReport(BuildTarget.StandaloneWindows64, "/b/Game.exe"));
            });
            StringAssert.Contains("built on linux and runs there only, not on windows", error.Message);
            step.OnPreprocessBuild(new BuildReport(BuildTarget.StandaloneLinux64, "/b/Game.x86_64"));
            NpcServerBundleBuildStep.HoldRoot = ServerBundleTests.NewFolder();
            step.OnPreprocessBuild(new BuildReport(BuildTarget.Android, "/b/Game.apk"));  // runs no server: no check
            step.OnPostprocessBuild(new BuildReport(BuildTarget.Android, "/b/Game.apk"));
            File.Delete(Path.Combine(Application.streamingAssetsPath, NpcServerBundle.DefaultFolder, "npc-engine-server"));
            StringAssert.Contains("lacks its executable", NpcServerBundleBuildStep.ProblemFor(Application.streamingAssetsPath, BuildTarget.StandaloneLinux64));
        }

        [Test]
        public void TheBuildFailsWhenTheBundleIsForAnotherCpu()
        {
            Application.streamingAssetsPath = ServerBundleTests.NewFolder();
            string folder = ServerBundleTests.MakeFakeBundle(Path.Combine(Application.streamingAssetsPath, NpcServerBundle.DefaultFolder), "linux");
            File.WriteAllText(Path.Combine(folder, NpcServerBundle.ManifestFile), File.ReadAllText(
                Path.Combine(folder, NpcServerBundle.ManifestFile)).Replace("\"x86_64\"", "\"aarch64\""));
            BuildFailedException error = Assert.Throws<BuildFailedException>(delegate
            {
                new NpcServerBundleBuildStep().OnPreprocessBuild(new BuildReport(BuildTarget.StandaloneLinux64, "/b/Game.x86_64"));
            });
            StringAssert.Contains("built for arm64 CPUs and does not run on x86_64", error.Message);
            Assert.IsNull(NpcServerBundle.Read(folder).ProblemFor("linux", "ARM64"), "spellings of one architecture agree");
        }

        [Test]
        public void ABuildForATargetThatRunsNoServerLeavesTheBundleOutAndPutsItBack()
        {
            Application.streamingAssetsPath = ServerBundleTests.NewFolder();
            NpcServerBundleBuildStep.HoldRoot = ServerBundleTests.NewFolder();
            string folder = ServerBundleTests.MakeFakeBundle(Path.Combine(Application.streamingAssetsPath, NpcServerBundle.DefaultFolder), "linux");
            File.WriteAllText(folder + ".meta", "guid: 1");
            NpcServerBundleBuildStep step = new NpcServerBundleBuildStep();
            foreach (BuildTarget target in new[] { BuildTarget.WebGL, BuildTarget.Android, BuildTarget.iOS })
            {
                step.OnPreprocessBuild(new BuildReport(target, "/b/Game"));
                Assert.IsFalse(Directory.Exists(folder), "the build's StreamingAssets hold no bundle for " + target);
                step.OnPostprocessBuild(new BuildReport(target, "/b/Game"));
                Assert.IsTrue(File.Exists(Path.Combine(folder, NpcServerBundle.ManifestFile)), "the bundle is back after " + target);
                Assert.IsTrue(File.Exists(folder + ".meta"));
            }
            step.OnPreprocessBuild(new BuildReport(BuildTarget.WebGL, "/b/Game"));  // a build that failed: no postprocess
            Assert.IsTrue(NpcServerBundleBuildStep.Restore(Application.streamingAssetsPath), "the next script load puts it back");
            Assert.IsTrue(File.Exists(Path.Combine(folder, NpcServerBundle.ManifestFile)));
        }

        [Test]
        public void AfterALinuxBuildTheServerInTheBuildIsExecutable()
        {
            if (Environment.OSVersion.Platform == PlatformID.Win32NT)
            {
                Assert.Ignore("the fake bundle's executable is a shell script");
            }
            string output = Path.Combine(ServerBundleTests.NewFolder(), "Game.x86_64");
            string built = NpcServerBundleBuildStep.BuiltStreamingAssets(output, "linux");
            Assert.AreEqual(Path.Combine(Path.GetDirectoryName(output), "Game_Data", "StreamingAssets"), built);
            string bundle = ServerBundleTests.MakeFakeBundle(Path.Combine(built, NpcServerBundle.DefaultFolder), "linux", "echo from the build");
            new NpcServerBundleBuildStep().OnPostprocessBuild(new BuildReport(BuildTarget.StandaloneLinux64, output));
            Assert.AreEqual("from the build", ServerBundleTests.RunAndRead(Path.Combine(bundle, "npc-engine-server")));
            Assert.AreEqual(Path.Combine("/b/Game.app", "Contents", "Resources", "Data", "StreamingAssets"),
                NpcServerBundleBuildStep.BuiltStreamingAssets("/b/Game.app", "macos"));
        }
    }
}
