using System;
using System.Collections.Generic;
using System.IO;

namespace NpcEngine
{
    /// <summary>
    /// A save slot's bytes on a wire without a bin type (protocol 1.1): standard padded base64 of
    /// consecutive 36 KiB slices, each string under the server's per-string limit. See
    /// schemas/PROTOCOL.md, "Snapshots in the game's save file".
    /// </summary>
    public static class SnapshotChunks
    {
        public const int ChunkBytes = 36 * 1024;

        public static List<object> ToChunks(byte[] data)
        {
            List<object> chunks = new List<object>();
            for (int offset = 0; offset < data.Length; offset += ChunkBytes)
            {
                chunks.Add(Convert.ToBase64String(data, offset, Math.Min(ChunkBytes, data.Length - offset)));
            }
            if (chunks.Count == 0)
            {
                chunks.Add("");
            }
            return chunks;
        }

        public static byte[] FromChunks(List<string> chunks)
        {
            using (MemoryStream joined = new MemoryStream())
            {
                for (int i = 0; i < chunks.Count; i++)
                {
                    byte[] part;
                    try
                    {
                        part = Convert.FromBase64String(chunks[i] ?? "");
                    }
                    catch (FormatException error)
                    {
                        throw new NpcEngineException(LocalCodes.BadMessage, "snapshot chunk " + i + " is not base64: " + error.Message, null, error);
                    }
                    joined.Write(part, 0, part.Length);
                }
                return joined.ToArray();
            }
        }
    }
}
