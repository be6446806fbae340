using System.Collections.Generic;
using System.Text.RegularExpressions;
using UnityEngine;

namespace NpcEngine.Unity
{
    /// <summary>
    /// A character as an asset (Assets > Create > NPC Engine > Character): persona, speaking style,
    /// knowledge and starting mood, edited in the Inspector. List it in an
    /// <see cref="NpcEngineClient"/>'s <c>characters</c>: on every connect it is upserted before
    /// <c>Connected</c> fires. What it changes is only what it declares: memories, relationships
    /// and recent turns stay the server's, and the starting mood is set only when the character
    /// is new (a mood the game has changed is not reset at the next start).
    /// </summary>
    [CreateAssetMenu(fileName = "NewCharacter", menuName = "NPC Engine/Character")]
    public sealed class NpcCharacter : ScriptableObject
    {
        public const int MaxPersonaChars = 4000;
        public const int MaxStyleChars = 1000;
        private static readonly Regex IdPattern = new Regex("^[A-Za-z0-9_.:-]{1,64}$");

        [Tooltip("Unique id the game talks to: 1-64 letters, digits, _ . : -")]
        public string id = "";
        [Tooltip("The name others call the character (1-64 characters)")]
        public string displayName = "";
        [TextArea(3, 12)]
        [Tooltip("Who the character is, in a few sentences")]
        public string persona = "";
        [Tooltip("How the character talks (optional)")]
        public string speakingStyle = "";
        [Tooltip("Facts the character knows, one per entry (optional)")]
        public List<string> knowledge = new List<string>();
        [Tooltip("The mood a new character starts in")]
        public string startingMood = "neutral";

        /// <summary>What is wrong with the asset, each naming it and the field; empty when it is fine.</summary>
        public List<string> Problems()
        {
            List<string> problems = new List<string>();
            string label = "NPC character asset '" + name + "'";
            if (id == null || !IdPattern.IsMatch(id))
            {
                problems.Add(label + ": id '" + id + "' must be 1-64 letters, digits, _ . : -");
            }
            if (string.IsNullOrEmpty(displayName) || displayName.Trim().Length == 0 || displayName.Length > 64)
            {
                problems.Add(label + ": displayName must be 1-64 characters");
            }
            if (string.IsNullOrEmpty(persona) || persona.Trim().Length == 0)
            {
                problems.Add(label + ": persona is empty; say who the character is");
            }
            else if (persona.Length > MaxPersonaChars)
            {
                problems.Add(label + ": persona is " + persona.Length + " characters; at most " + MaxPersonaChars);
            }
            if (speakingStyle != null && speakingStyle.Length > MaxStyleChars)
            {
                problems.Add(label + ": speakingStyle is " + speakingStyle.Length + " characters; at most " + MaxStyleChars);
            }
            if (knowledge != null && knowledge.Exists(delegate(string fact) { return string.IsNullOrEmpty(fact) || fact.Trim().Length == 0; }))
            {
                problems.Add(label + ": knowledge has an empty entry");
            }
            if (string.IsNullOrEmpty(startingMood) || startingMood.Trim().Length == 0 || startingMood.Length > 32)
            {
                problems.Add(label + ": startingMood must be 1-32 characters");
            }
            return problems;
        }

        /// <summary>The character to upsert; <paramref name="isNew"/>: with its starting mood.</summary>
        public Character ToCharacter(bool isNew)
        {
            return new Character
            {
                Id = id,
                Name = displayName,
                Persona = persona,
                SpeakingStyle = string.IsNullOrEmpty(speakingStyle) ? null : speakingStyle,
                Knowledge = new List<string>(knowledge ?? new List<string>()),
                Mood = isNew ? startingMood : null,
            };
        }
    }
}
