using UnityEditor;
using UnityEngine;

namespace NpcEngine.Editor
{
    /// <summary>
    /// Tools > NPC Engine > Import Server Bundle...: copies the folder `npc-engine bundle --out`
    /// wrote into StreamingAssets/npc-engine, where <c>NpcServer</c> finds it and from
    /// where Unity copies it into every build.
    /// </summary>
    public static class NpcServerBundleMenu
    {
        public const string MenuPath = "Tools/NPC Engine/Import Server Bundle...";

        [MenuItem(MenuPath)]
        public static void Import()
        {
            string source = EditorUtility.OpenFolderPanel("The folder `npc-engine bundle --out` wrote", "", "");
            if (string.IsNullOrEmpty(source))
            {
                return;  // cancelled
            }
            try
            {
                NpcServerBundle bundle = NpcServerBundle.Install(source, Application.streamingAssetsPath);
                AssetDatabase.Refresh();
                EditorUtility.DisplayDialog("NPC Engine", "Imported the " + bundle.Os + " server bundle (npc-engine "
                    + bundle.EngineVersion + ", protocol " + bundle.ProtocolVersion + ") into " + bundle.Folder, "OK");
            }
            catch (NpcEngineException error)
            {
                EditorUtility.DisplayDialog("NPC Engine", error.Message, "OK");
            }
        }
    }
}
