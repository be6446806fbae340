using System;
using System.Diagnostics;
using System.IO;
using NUnit.Framework;

namespace NpcEngine.Tests
{
    /// <summary>
    /// <see cref="NpcServerBundle"/> on real folders: what it refuses (no manifest, another
    /// format, a missing executable, another OS) and an install that replaces an older bundle,
    /// never a folder that is not one, and leaves the executable runnable.
    /// </summary>
    [TestFixture]
    public class ServerBundleTests
    {
        /// <summary>A folder shaped like `npc-engine bundle` output whose executable is a shell script
        /// (written without the executable bit, as some copies leave it).</summary>
        public static string MakeFakeBundle(string folder, string os, string script = "echo fake server")
        {
            Directory.CreateDirectory(Path.Combine(folder, "_internal", "npc_engine"));
            File.WriteAllText(Path.Combine(folder, "_internal", "npc_engine", "model.txt"), "weights");
            File.WriteAllText(Path.Combine(folder, "npc-engine-server"), "#!/bin/sh\n" + script + "\n");
            File.WriteAllText(Path.Combine(folder, NpcServerBundle.ManifestFile),
                "{\"format\": 1, \"executable\": \"npc-engine-server\", \"os\": \"" + os + "\", \"machine\": \"x86_64\", "
                + "\"npc_engine_version\": \"0.1.0\", \"protocol_version\": \"1.0\", \"backend\": \"onnx\"}\n");
            return folder;
        }

        public static string NewFolder()
        {
            string folder = Path.Combine(Path.GetTempPath(), "npc-bundle-test-" + Guid.NewGuid().ToString("N"));
            Directory.CreateDirectory(folder);
            return folder;
        }

        public static string RunAndRead(string executable)
        {
            using (Process run = Process.Start(new ProcessStartInfo(executable) { UseShellExecute = false, RedirectStandardOutput = true }))
            {
                string output = run.StandardOutput.ReadToEnd().Trim();
                run.WaitForExit();
                return output;
            }
        }

        private static void SkipOnWindows()
        {
            if (Environment.OSVersion.Platform == PlatformID.Win32NT)
            {
                Assert.Ignore("the fake bundle's executable is a shell script");
            }
        }

        private static NpcEngineException Refusal(TestDelegate action)
        {
            NpcEngineException error = Assert.Throws<NpcEngineException>(action);
            Assert.AreEqual(LocalCodes.BadBundle, error.Code);
            return error;
        }

        [Test]
        public void ReadsWhatTheManifestSays()
        {
            NpcServerBundle bundle = NpcServerBundle.Read(MakeFakeBundle(NewFolder(), "linux"));
            Assert.AreEqual("linux", bundle.Os);
            Assert.AreEqual("0.1.0", bundle.EngineVersion);
            Assert.AreEqual("1.0", bundle.ProtocolVersion);
            Assert.AreEqual(Path.Combine(bundle.Folder, "npc-engine-server"), bundle.ExecutablePath);
            Assert.IsNull(bundle.ProblemFor("linux"));
            StringAssert.Contains("built on linux and runs there only, not on windows", bundle.ProblemFor("windows"));
        }

        [Test]
        public void RefusesWhatIsNotAWholeBundle()
        {
            StringAssert.Contains("npc-engine bundle --out", Refusal(delegate { NpcServerBundle.Read(NewFolder()); }).Message);
            string notJson = MakeFakeBundle(NewFolder(), "linux");
            File.WriteAllText(Path.Combine(notJson, NpcServerBundle.ManifestFile), "{format: 1");
            StringAssert.Contains("is not JSON", Refusal(delegate { NpcServerBundle.Read(notJson); }).Message);
            string future = MakeFakeBundle(NewFolder(), "linux");
            File.WriteAllText(Path.Combine(future, NpcServerBundle.ManifestFile), "{\"format\": 2, \"executable\": \"npc-engine-server\"}");
            StringAssert.Contains("build the bundle again", Refusal(delegate { NpcServerBundle.Read(future); }).Message);
            string partial = MakeFakeBundle(NewFolder(), "linux");
            File.Delete(Path.Combine(partial, "npc-engine-server"));
            StringAssert.Contains("lacks its executable", Refusal(delegate { NpcServerBundle.Read(partial); }).Message);
            string escaping = MakeFakeBundle(NewFolder(), "linux");
            File.WriteAllText(Path.Combine(escaping, NpcServerBundle.ManifestFile), "{\"format\": 1, \"executable\": \"../../bin/sh\", \"os\": \"linux\"}");
            Refusal(delegate { NpcServerBundle.Read(escaping); });
        }

        [Test]
        public void InstallReplacesAnOlderBundleAndLeavesItRunnable()
        {
            SkipOnWindows();
            string assets = NewFolder();
            string first = MakeFakeBundle(NewFolder(), "linux", "echo first");
            File.WriteAllText(Path.Combine(first, "_internal", "only-in-the-first.txt"), "old");
            NpcServerBundle installed = NpcServerBundle.Install(first, assets);
            Assert.AreEqual(Path.Combine(assets, NpcServerBundle.DefaultFolder), installed.Folder);
            Assert.AreEqual("first", RunAndRead(installed.ExecutablePath), "copied without its x bit, made runnable");
            NpcServerBundle second = NpcServerBundle.Install(MakeFakeBundle(NewFolder(), "linux", "echo second"), assets);
            Assert.AreEqual("second", RunAndRead(second.ExecutablePath));
            Assert.IsFalse(File.Exists(Path.Combine(second.Folder, "_internal", "only-in-the-first.txt")), "the old bundle is gone, not merged");
            Assert.AreEqual("weights", File.ReadAllText(Path.Combine(second.Folder, "_internal", "npc_engine", "model.txt")));
            Assert.IsFalse(Directory.Exists(second.Folder + ".importing"));
        }

        [Test]
        public void InstallLeavesAFolderThatIsNotABundleAlone()
        {
            string assets = NewFolder();
            string mine = Path.Combine(assets, NpcServerBundle.DefaultFolder);
            Directory.CreateDirectory(mine);
            File.WriteAllText(Path.Combine(mine, "notes.txt"), "mine");
            StringAssert.Contains("is not a server bundle", Refusal(delegate { NpcServerBundle.Install(MakeFakeBundle(NewFolder(), "linux"), assets); }).Message);
            Assert.AreEqual("mine", File.ReadAllText(Path.Combine(mine, "notes.txt")));
            Refusal(delegate { NpcServerBundle.Install(NewFolder(), assets); });  // no bundle: nothing copied
            Assert.AreEqual(1, Directory.GetFileSystemEntries(assets).Length);
        }
    }
}
