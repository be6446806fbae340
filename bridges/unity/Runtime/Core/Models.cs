using System.Collections.Generic;

namespace NpcEngine
{
    // Typed views of the results in schemas/protocol/result.*.json. Each keeps the raw map too,
    // so fields added by a newer server minor are still reachable.

    public sealed class ModelSummary
    {
        public string Path;
        public long NumParameters;
        public long VocabSize;
        public long CanvasLength;
        public long MaxPositionEmbeddings;
        public string Device;
        public string Dtype;

        public static ModelSummary FromMap(PackMap map)
        {
            map = map ?? new PackMap();
            return new ModelSummary
            {
                Path = map.GetString("path"),
                NumParameters = map.GetLong("num_parameters"),
                VocabSize = map.GetLong("vocab_size"),
                CanvasLength = map.GetLong("canvas_length"),
                MaxPositionEmbeddings = map.GetLong("max_position_embeddings"),
                Device = map.GetString("device"),
                Dtype = map.GetString("dtype"),
            };
        }
    }

    public sealed class HelloResult
    {
        public string Server;
        public string ServerVersion;
        public string ProtocolVersion;
        public List<string> Capabilities;
        public List<string> Ops;
        public ModelSummary Model;
        public double? FrameBudgetMs;
        public double TargetFps;
        public PackMap Limits;
        public List<string> Warnings;
        public PackMap Raw;

        public static HelloResult FromMap(PackMap map)
        {
            return new HelloResult
            {
                Server = map.GetString("server"),
                ServerVersion = map.GetString("server_version"),
                ProtocolVersion = map.GetString("protocol_version"),
                Capabilities = map.GetStrings("capabilities"),
                Ops = map.GetStrings("ops"),
                Model = ModelSummary.FromMap(map.GetMap("model")),
                FrameBudgetMs = map.GetNullableDouble("frame_budget_ms"),
                TargetFps = map.GetDouble("target_fps"),
                Limits = map.GetMap("limits") ?? new PackMap(),
                Warnings = map.GetStrings("warnings"),
                Raw = map,
            };
        }
    }

    public sealed class Relationship
    {
        public long Trust;
        public long Affinity;
        public long Familiarity;

        public static Relationship FromMap(PackMap map)
        {
            return new Relationship { Trust = map.GetLong("trust"), Affinity = map.GetLong("affinity"), Familiarity = map.GetLong("familiarity") };
        }

        public PackMap ToMap()
        {
            return new PackMap { { "trust", Trust }, { "affinity", Affinity }, { "familiarity", Familiarity } };
        }
    }

    public sealed class Memory
    {
        public string Text;
        public double Salience;
        public long CreatedMs;
    }

    public sealed class Turn
    {
        public string SpeakerId;
        public string Text;
        public long CreatedMs;
        /// <summary>"line", or "event" (protocol 1.1): a game event, <see cref="SpeakerId"/> caused it.</summary>
        public string Kind = "line";

        public bool IsEvent { get { return Kind == "event"; } }
    }

    /// <summary>
    /// A character. For <c>UpsertCharacterAsync</c>, fields left null are left out of the request
    /// and keep their stored values (only <see cref="Id"/> is required).
    /// </summary>
    public sealed class Character
    {
        public string Id;
        public string Name;
        public string Persona;
        public string SpeakingStyle;
        public List<string> Knowledge;
        public string Mood;
        public Dictionary<string, Relationship> Relationships;
        public List<Memory> Memories;
        public List<Turn> RecentTurns;
        /// <summary>Flag name to bool, long, double or string.</summary>
        public PackMap Flags;

        public static Character FromMap(PackMap map)
        {
            Character character = new Character
            {
                Id = map.GetString("id"),
                Name = map.GetString("name"),
                Persona = map.GetString("persona"),
                SpeakingStyle = map.GetString("speaking_style"),
                Knowledge = map.GetStrings("knowledge"),
                Mood = map.GetString("mood"),
                Relationships = new Dictionary<string, Relationship>(),
                Memories = new List<Memory>(),
                RecentTurns = new List<Turn>(),
                Flags = map.GetMap("flags") ?? new PackMap(),
            };
            PackMap relationships = map.GetMap("relationships") ?? new PackMap();
            foreach (KeyValuePair<string, object> entry in relationships)
            {
                PackMap relationship = entry.Value as PackMap;
                if (relationship != null)
                {
                    character.Relationships[entry.Key] = Relationship.FromMap(relationship);
                }
            }
            foreach (PackMap memory in Maps(map.GetList("memories")))
            {
                character.Memories.Add(new Memory { Text = memory.GetString("text"), Salience = memory.GetDouble("salience"), CreatedMs = memory.GetLong("created_ms") });
            }
            foreach (PackMap turn in Maps(map.GetList("recent_turns")))
            {
                character.RecentTurns.Add(new Turn
                {
                    SpeakerId = turn.GetString("speaker_id"), Text = turn.GetString("text"), CreatedMs = turn.GetLong("created_ms"),
                    Kind = turn.GetString("kind", "line"),
                });
            }
            return character;
        }

        public PackMap ToMap()
        {
            PackMap map = new PackMap { { "id", Id } };
            AddIfSet(map, "name", Name);
            AddIfSet(map, "persona", Persona);
            AddIfSet(map, "speaking_style", SpeakingStyle);
            if (Knowledge != null)
            {
                map["knowledge"] = new List<object>(Knowledge);
            }
            AddIfSet(map, "mood", Mood);
            if (Relationships != null)
            {
                PackMap relationships = new PackMap();
                foreach (KeyValuePair<string, Relationship> entry in Relationships)
                {
                    relationships[entry.Key] = entry.Value.ToMap();
                }
                map["relationships"] = relationships;
            }
            if (Memories != null)
            {
                List<object> memories = new List<object>();
                foreach (Memory memory in Memories)
                {
                    memories.Add(new PackMap { { "text", memory.Text }, { "salience", memory.Salience }, { "created_ms", memory.CreatedMs } });
                }
                map["memories"] = memories;
            }
            if (RecentTurns != null)
            {
                List<object> turns = new List<object>();
                foreach (Turn turn in RecentTurns)
                {
                    turns.Add(new PackMap { { "speaker_id", turn.SpeakerId }, { "text", turn.Text }, { "created_ms", turn.CreatedMs }, { "kind", turn.Kind ?? "line" } });
                }
                map["recent_turns"] = turns;
            }
            if (Flags != null)
            {
                map["flags"] = Flags;
            }
            return map;
        }

        private static void AddIfSet(PackMap map, string key, string value)
        {
            if (value != null)
            {
                map[key] = value;
            }
        }

        internal static IEnumerable<PackMap> Maps(List<object> items)
        {
            if (items == null)
            {
                yield break;
            }
            foreach (object item in items)
            {
                PackMap map = item as PackMap;
                if (map != null)
                {
                    yield return map;
                }
            }
        }
    }

    public sealed class Speaker
    {
        public string Id;
        public string Name;
        public string Description;

        public static Speaker FromMap(PackMap map)
        {
            return new Speaker { Id = map.GetString("id"), Name = map.GetString("name"), Description = map.GetString("description", "") };
        }
    }

    public sealed class WorldFact
    {
        public string Key;
        public string Text;
        public double Salience;

        public static WorldFact FromMap(PackMap map)
        {
            return new WorldFact { Key = map.GetString("key"), Text = map.GetString("text"), Salience = map.GetDouble("salience") };
        }
    }

    public sealed class SnapshotInfo
    {
        public string Name;
        /// <summary>"world" or "character".</summary>
        public string Scope;
        public string CharacterId;
        public long CreatedMs;
        public long SchemaVersion;
        public long NumBytes;

        public static SnapshotInfo FromMap(PackMap map)
        {
            return new SnapshotInfo
            {
                Name = map.GetString("name"),
                Scope = map.GetString("scope"),
                CharacterId = map.GetString("character_id"),
                CreatedMs = map.GetLong("created_ms"),
                SchemaVersion = map.GetLong("schema_version"),
                NumBytes = map.GetLong("num_bytes"),
            };
        }
    }

    /// <summary>One state change a say applied; <see cref="Kind"/> is "mood", "relationship", "memory" or "flag".</summary>
    public sealed class StateChange
    {
        public string Kind;
        public string Slot;
        public string Path;
        public object Old;
        public object New;
        public long? Delta;

        public static StateChange FromMap(PackMap map)
        {
            object delta = map.GetOrNull("delta");
            return new StateChange
            {
                Kind = map.GetString("kind"),
                Slot = map.GetString("slot"),
                Path = map.GetString("path"),
                Old = map.GetOrNull("old"),
                New = map.GetOrNull("new"),
                Delta = delta is long ? (long?)(long)delta : null,
            };
        }
    }

    /// <summary>A say's best valid fields so far, while it is still denoising.</summary>
    public sealed class Draft
    {
        public string RequestId;
        public PackMap Fields;
        public long NumSteps;

        public static Draft FromEvent(PackMap message)
        {
            PackMap draft = message.GetMap("draft") ?? new PackMap();
            return new Draft { RequestId = message.GetString("request_id"), Fields = draft.GetMap("fields") ?? new PackMap(), NumSteps = draft.GetLong("num_steps") };
        }
    }

    public static class FinishReasons
    {
        public const string Complete = "complete";
        public const string Deadline = "deadline";
        public const string Cancelled = "cancelled";
    }

    public sealed class SayResult
    {
        public string RequestId;
        public string CharacterId;
        public string SpeakerId;
        /// <summary>See <see cref="FinishReasons"/>.</summary>
        public string FinishReason;
        /// <summary>The template's fields; null when cancelled.</summary>
        public PackMap Fields;
        public List<StateChange> Changes;
        public long Seed;
        public long NumSteps;
        public double ElapsedMs;
        public long NumPromptTokens;
        public long NumCachedPromptTokens;
        /// <summary>Protocol 1.1: an event answered by the reply to an earlier event of the same character.</summary>
        public bool Coalesced;

        public bool IsCancelled { get { return FinishReason == FinishReasons.Cancelled; } }

        /// <summary>The value of a text/choice field (e.g. "say"), or null.</summary>
        public string GetText(string field)
        {
            return Fields == null ? null : Fields.GetString(field);
        }

        public static SayResult FromMap(PackMap map, string requestId)
        {
            SayResult result = new SayResult
            {
                RequestId = requestId,
                CharacterId = map.GetString("character_id"),
                SpeakerId = map.GetString("speaker_id"),
                FinishReason = map.GetString("finish_reason"),
                Fields = map.GetMap("fields"),
                Changes = new List<StateChange>(),
                Seed = map.GetLong("seed"),
                NumSteps = map.GetLong("num_steps"),
                ElapsedMs = map.GetDouble("elapsed_ms"),
                NumPromptTokens = map.GetLong("num_prompt_tokens"),
                NumCachedPromptTokens = map.GetLong("num_cached_prompt_tokens"),
                Coalesced = map.GetBool("coalesced"),
            };
            foreach (PackMap change in Character.Maps(map.GetList("changes")))
            {
                result.Changes.Add(StateChange.FromMap(change));
            }
            return result;
        }
    }
}
