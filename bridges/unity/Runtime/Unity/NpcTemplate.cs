using System;
using System.Collections.Generic;
using System.Text.RegularExpressions;
using UnityEngine;

namespace NpcEngine.Unity
{
    public enum NpcSlotKind
    {
        Text,
        Choice,
        Integer,
        Boolean,
    }

    public enum NpcEffectKind
    {
        SetMood,
        AddToRelationship,
        Remember,
        SetFlag,
    }

    /// <summary>One field of a template's output (docs/templates.md).</summary>
    [Serializable]
    public sealed class NpcSlot
    {
        public string name = "";
        public NpcSlotKind kind = NpcSlotKind.Text;
        [Tooltip("Text: the most tokens the line may take")]
        public int maxTokens = 24;
        [Tooltip("Choice: the options, one per entry")]
        public List<string> options = new List<string>();
        [Tooltip("Integer: the smallest value")]
        public int min;
        [Tooltip("Integer: the largest value")]
        public int max = 1;
        [Tooltip("Text (optional): a regular expression the whole line matches")]
        public string pattern = "";
    }

    /// <summary>What a slot's value does to the character when the reply lands (docs/state.md).</summary>
    [Serializable]
    public sealed class NpcEffect
    {
        public NpcEffectKind kind = NpcEffectKind.SetMood;
        public string slot = "";
        [Tooltip("AddToRelationship: trust, affinity or familiarity")]
        public string dimension = "trust";
        [Tooltip("Remember: how much the memory matters (0-1)")]
        public float salience = 0.5f;
        [Tooltip("SetFlag: the flag's name")]
        public string flag = "";
    }

    /// <summary>
    /// A dialogue template as an asset (Assets > Create > NPC Engine > Template): its slots and
    /// effects edited in the Inspector. List it in an <see cref="NpcEngineClient"/>'s
    /// <c>templates</c>: on every connect it is registered (before <c>Connected</c> fires); the
    /// server compiles it and names what is wrong, and <see cref="Problems"/> catches the common
    /// mistakes before connecting.
    /// </summary>
    [CreateAssetMenu(fileName = "NewTemplate", menuName = "NPC Engine/Template")]
    public sealed class NpcTemplate : ScriptableObject
    {
        private static readonly Regex TemplateName = new Regex("^[A-Za-z0-9_.-]{1,64}$");
        private static readonly Regex SlotName = new Regex("^[A-Za-z_][A-Za-z0-9_]{0,63}$");
        private static readonly string[] Dimensions = { "trust", "affinity", "familiarity" };

        [Tooltip("The name says use (1-64 letters, digits, _ . -)")]
        public string templateName = "";
        [TextArea(2, 6)]
        public string description = "";
        public List<NpcSlot> slots = new List<NpcSlot>();
        public List<NpcEffect> effects = new List<NpcEffect>();
        [Tooltip("The text slot recorded as the character's line (empty: the first text slot)")]
        public string lineSlot = "";

        /// <summary>What is wrong with the asset, each naming it and the field; empty when it is fine.</summary>
        public List<string> Problems()
        {
            List<string> problems = new List<string>();
            string label = "NPC template asset '" + name + "'";
            if (templateName == null || !TemplateName.IsMatch(templateName))
            {
                problems.Add(label + ": templateName '" + templateName + "' must be 1-64 letters, digits, _ . -");
            }
            if (slots == null || slots.Count == 0)
            {
                problems.Add(label + ": slots is empty; a template fills at least one");
                return problems;
            }
            HashSet<string> seen = new HashSet<string>();
            for (int i = 0; i < slots.Count; i++)
            {
                NpcSlot slot = slots[i];
                string where = label + ": slots[" + i + "] '" + slot.name + "'";
                if (slot.name == null || !SlotName.IsMatch(slot.name))
                {
                    problems.Add(where + ": name must be an identifier (letters, digits, _; not starting with a digit)");
                }
                else if (!seen.Add(slot.name))
                {
                    problems.Add(where + ": another slot has this name");
                }
                if (slot.kind == NpcSlotKind.Text && slot.maxTokens < 1)
                {
                    problems.Add(where + ": maxTokens must be at least 1");
                }
                if (slot.kind == NpcSlotKind.Choice && (slot.options == null || slot.options.Count == 0))
                {
                    problems.Add(where + ": a choice needs at least one option");
                }
                if (slot.kind == NpcSlotKind.Integer && slot.min > slot.max)
                {
                    problems.Add(where + ": min " + slot.min + " is above max " + slot.max);
                }
            }
            for (int i = 0; i < (effects == null ? 0 : effects.Count); i++)
            {
                NpcEffect effect = effects[i];
                string where = label + ": effects[" + i + "]";
                if (!seen.Contains(effect.slot ?? ""))
                {
                    problems.Add(where + ": slot '" + effect.slot + "' is not one of the template's slots");
                }
                if (effect.kind == NpcEffectKind.AddToRelationship && Array.IndexOf(Dimensions, effect.dimension) < 0)
                {
                    problems.Add(where + ": dimension must be trust, affinity or familiarity");
                }
                if (effect.kind == NpcEffectKind.SetFlag && string.IsNullOrEmpty(effect.flag))
                {
                    problems.Add(where + ": a SetFlag effect names its flag");
                }
            }
            if (!string.IsNullOrEmpty(lineSlot) && !seen.Contains(lineSlot))
            {
                problems.Add(label + ": lineSlot '" + lineSlot + "' is not one of the template's slots");
            }
            return problems;
        }

        /// <summary>The template as the protocol sends it (schemas/protocol/template.json).</summary>
        public PackMap ToMap()
        {
            List<object> slotMaps = new List<object>();
            foreach (NpcSlot slot in slots)
            {
                PackMap map = new PackMap { { "name", slot.name }, { "kind", slot.kind.ToString().ToLowerInvariant() } };
                switch (slot.kind)
                {
                    case NpcSlotKind.Text:
                        map["max_tokens"] = (long)slot.maxTokens;
                        if (!string.IsNullOrEmpty(slot.pattern))
                        {
                            map["pattern"] = slot.pattern;
                        }
                        break;
                    case NpcSlotKind.Choice:
                        map["options"] = new List<object>(slot.options.ConvertAll(delegate(string o) { return (object)o; }));
                        break;
                    case NpcSlotKind.Integer:
                        map["min"] = (long)slot.min;
                        map["max"] = (long)slot.max;
                        break;
                }
                slotMaps.Add(map);
            }
            List<object> effectMaps = new List<object>();
            foreach (NpcEffect effect in effects ?? new List<NpcEffect>())
            {
                string kind = Regex.Replace(effect.kind.ToString(), "(?<=[a-z])([A-Z])", "_$1").ToLowerInvariant();
                PackMap map = new PackMap { { "kind", kind }, { "slot", effect.slot } };
                if (effect.kind == NpcEffectKind.AddToRelationship)
                {
                    map["dimension"] = effect.dimension;
                }
                else if (effect.kind == NpcEffectKind.Remember)
                {
                    map["salience"] = (double)effect.salience;
                }
                else if (effect.kind == NpcEffectKind.SetFlag)
                {
                    map["flag"] = effect.flag;
                }
                effectMaps.Add(map);
            }
            PackMap template = new PackMap { { "name", templateName }, { "slots", slotMaps } };
            if (!string.IsNullOrEmpty(description))
            {
                template["description"] = description;
            }
            if (effectMaps.Count > 0)
            {
                template["effects"] = effectMaps;
            }
            if (!string.IsNullOrEmpty(lineSlot))
            {
                template["line_slot"] = lineSlot;
            }
            return template;
        }
    }
}
