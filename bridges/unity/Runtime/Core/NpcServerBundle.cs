using System;
using System.Diagnostics;
using System.IO;

namespace NpcEngine
{
    /// <summary>
    /// A server bundle written by <c>npc-engine bundle --out DIR</c>: its folder and what its
    /// <c>bundle.json</c> says (the OS it was built on, the executable, versions). A bundle runs on
    /// the OS it was built on only, so a game ships one per platform. Errors are
    /// <see cref="NpcEngineException"/> with code <see cref="LocalCodes.BadBundle"/>.
    /// </summary>
    public sealed class NpcServerBundle
    {
        public const string ManifestFile = "bundle.json";
        /// <summary>The folder under StreamingAssets where <c>NpcServer</c> looks by default.</summary>
        public const string DefaultFolder = "npc-engine";
        private const long SupportedFormat = 1;

        private NpcServerBundle() { }

        public string Folder { get; private set; }
        /// <summary>"windows", "macos" or "linux": where it runs.</summary>
        public string Os { get; private set; }
        public string Executable { get; private set; }
        public string Machine { get; private set; }
        public string EngineVersion { get; private set; }
        public string ProtocolVersion { get; private set; }
        public string ExecutablePath { get { return Path.Combine(Folder, Executable); } }

        /// <summary>The OS this process runs on, in a bundle's words.</summary>
        public static string CurrentOs()
        {
            if (Environment.OSVersion.Platform == PlatformID.Win32NT)
            {
                return "windows";
            }
            // Mono and .NET report Unix for macOS too; its system folder tells them apart.
            bool isMac = Environment.OSVersion.Platform == PlatformID.MacOSX || Directory.Exists("/System/Library/CoreServices");
            return isMac ? "macos" : "linux";
        }

        /// <summary>Reads the bundle in <paramref name="folder"/> and checks that it is whole.</summary>
        public static NpcServerBundle Read(string folder)
        {
            string manifestPath = Path.Combine(folder ?? "", ManifestFile);
            if (!File.Exists(manifestPath))
            {
                throw Bad("no server bundle in " + folder + " (no " + ManifestFile + "): build one with `npc-engine bundle --out <folder>`");
            }
            PackMap manifest;
            try
            {
                manifest = Json.Parse(File.ReadAllText(manifestPath)) as PackMap;
            }
            catch (FormatException error)
            {
                throw Bad(manifestPath + " is not JSON: " + error.Message);
            }
            if (manifest == null || manifest.GetLong("format", -1) != SupportedFormat)
            {
                throw Bad(manifestPath + " is not a bundle manifest this package reads (format " + SupportedFormat + "); build the bundle again with this version");
            }
            NpcServerBundle bundle = new NpcServerBundle
            {
                Folder = Path.GetFullPath(folder),
                Os = manifest.GetString("os", ""),
                Executable = manifest.GetString("executable", ""),
                Machine = manifest.GetString("machine", ""),
                EngineVersion = manifest.GetString("npc_engine_version", ""),
                ProtocolVersion = manifest.GetString("protocol_version", ""),
            };
            if (bundle.Executable.Length == 0 || bundle.Executable != Path.GetFileName(bundle.Executable) || !File.Exists(bundle.ExecutablePath))
            {
                throw Bad("the bundle in " + folder + " lacks its executable " + bundle.Executable + "; copy the whole folder");
            }
            return bundle;
        }

        /// <summary>Why this bundle cannot run on <paramref name="os"/> (and, when given, CPUs of
        /// <paramref name="machine"/>), or null when it can.</summary>
        public string ProblemFor(string os, string machine = null)
        {
            if (Os != os)
            {
                return "the server bundle in " + Folder + " was built on " + Os + " and runs there only, not on " + os
                    + ": build it with `npc-engine bundle` on " + os + " and import that one";
            }
            if (string.IsNullOrEmpty(machine) || string.IsNullOrEmpty(Machine))
            {
                return null;
            }
            string built = NormalizeMachine(Machine);
            string wanted = NormalizeMachine(machine);
            if (built == wanted || (os == "macos" && built == "x86_64" && wanted == "arm64"))  // Rosetta runs x86_64 there
            {
                return null;
            }
            return "the server bundle in " + Folder + " was built for " + built + " CPUs and does not run on " + wanted
                + ": build it with `npc-engine bundle` on a " + os + " " + wanted + " machine and import that one";
        }

        /// <summary>A CPU architecture in one spelling: x86_64 (amd64, x64), arm64 (aarch64), x86 (i386, i686).</summary>
        public static string NormalizeMachine(string machine)
        {
            switch ((machine ?? "").ToLowerInvariant())
            {
                case "x86_64":
                case "amd64":
                case "x64":
                    return "x86_64";
                case "arm64":
                case "aarch64":
                    return "arm64";
                case "x86":
                case "i386":
                case "i686":
                    return "x86";
                default:
                    return (machine ?? "").ToLowerInvariant();
            }
        }

        /// <summary>
        /// Copies the bundle in <paramref name="source"/> to <paramref name="targetRoot"/>/<paramref name="folderName"/>
        /// (StreamingAssets/npc-engine by default), replacing an older bundle there. A folder there
        /// that is not a bundle is left alone (an error says so); nothing is half-copied into place.
        /// </summary>
        public static NpcServerBundle Install(string source, string targetRoot, string folderName = DefaultFolder)
        {
            NpcServerBundle incoming = Read(source);
            string target = Path.GetFullPath(Path.Combine(targetRoot, folderName));
            if (IsWithin(target, incoming.Folder) || IsWithin(incoming.Folder, target))
            {
                throw Bad("the bundle is already at " + target + "; choose the folder `npc-engine bundle` wrote");
            }
            if (Directory.Exists(target) && !File.Exists(Path.Combine(target, ManifestFile)))
            {
                throw Bad(target + " exists and is not a server bundle; move it away first");
            }
            string staging = target + ".importing";
            if (Directory.Exists(staging))
            {
                Directory.Delete(staging, true);  // a previous import that was interrupted
            }
            CopyFolder(incoming.Folder, staging);
            if (Directory.Exists(target))
            {
                Directory.Delete(target, true);
            }
            Directory.Move(staging, target);
            NpcServerBundle installed = Read(target);
            MakeExecutable(installed.ExecutablePath);
            return installed;
        }

        /// <summary>Sets the executable bit on macOS and Linux (a copy may drop it); a no-op on Windows.</summary>
        public static void MakeExecutable(string path)
        {
            if (Environment.OSVersion.Platform == PlatformID.Win32NT || !File.Exists("/bin/chmod"))
            {
                return;
            }
            ProcessStartInfo start = new ProcessStartInfo("/bin/chmod", "+x \"" + path + "\"")
            {
                UseShellExecute = false,
                CreateNoWindow = true,
            };
            using (Process chmod = Process.Start(start))
            {
                chmod.WaitForExit();
                if (chmod.ExitCode != 0)
                {
                    throw Bad("cannot make " + path + " executable (chmod exited with " + chmod.ExitCode + ")");
                }
            }
        }

        private static void CopyFolder(string from, string to)
        {
            Directory.CreateDirectory(to);
            foreach (string file in Directory.GetFiles(from))
            {
                File.Copy(file, Path.Combine(to, Path.GetFileName(file)));
            }
            foreach (string folder in Directory.GetDirectories(from))
            {
                CopyFolder(folder, Path.Combine(to, Path.GetFileName(folder)));
            }
        }

        private static bool IsWithin(string path, string folder)
        {
            string prefix = folder.TrimEnd(Path.DirectorySeparatorChar) + Path.DirectorySeparatorChar;
            return path == folder || path.StartsWith(prefix, StringComparison.Ordinal);
        }

        private static NpcEngineException Bad(string message)
        {
            return new NpcEngineException(LocalCodes.BadBundle, message);
        }
    }
}
