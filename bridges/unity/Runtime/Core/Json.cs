using System;
using System.Collections.Generic;
using System.Globalization;
using System.Text;

namespace NpcEngine
{
    /// <summary>
    /// A small strict JSON reader into protocol values (PackMap, List, long, double, string, bool,
    /// null), so templates kept as JSON text assets can be registered without a JSON package.
    /// Integers without a fraction or exponent become long; others double.
    /// </summary>
    public static class Json
    {
        private const int MaxDepth = 64;

        public static object Parse(string text)
        {
            if (text == null)
            {
                throw new ArgumentNullException("text");
            }
            Parser parser = new Parser(text);
            object value = parser.Value(0);
            parser.SkipSpace();
            if (parser.Position != text.Length)
            {
                throw parser.Error("unexpected text after the value");
            }
            return value;
        }

        private sealed class Parser
        {
            private readonly string _text;
            public int Position;

            public Parser(string text)
            {
                _text = text;
            }

            public FormatException Error(string message)
            {
                return new FormatException("JSON: " + message + " at character " + Position);
            }

            public void SkipSpace()
            {
                while (Position < _text.Length && (_text[Position] == ' ' || _text[Position] == '\t' || _text[Position] == '\n' || _text[Position] == '\r'))
                {
                    Position++;
                }
            }

            public object Value(int depth)
            {
                if (depth > MaxDepth)
                {
                    throw Error("nested too deeply");
                }
                SkipSpace();
                if (Position >= _text.Length)
                {
                    throw Error("unexpected end");
                }
                char c = _text[Position];
                if (c == '{')
                {
                    return Object(depth);
                }
                if (c == '[')
                {
                    return Array(depth);
                }
                if (c == '"')
                {
                    return String();
                }
                if (c == '-' || (c >= '0' && c <= '9'))
                {
                    return Number();
                }
                if (Literal("true"))
                {
                    return true;
                }
                if (Literal("false"))
                {
                    return false;
                }
                if (Literal("null"))
                {
                    return null;
                }
                throw Error("unexpected '" + c + "'");
            }

            private bool Literal(string word)
            {
                if (string.CompareOrdinal(_text, Position, word, 0, word.Length) == 0)
                {
                    Position += word.Length;
                    return true;
                }
                return false;
            }

            private PackMap Object(int depth)
            {
                PackMap map = new PackMap();
                Position++;
                SkipSpace();
                if (Peek() == '}')
                {
                    Position++;
                    return map;
                }
                while (true)
                {
                    SkipSpace();
                    if (Peek() != '"')
                    {
                        throw Error("expected a string key");
                    }
                    string key = String();
                    SkipSpace();
                    Expect(':');
                    map[key] = Value(depth + 1);
                    SkipSpace();
                    if (Peek() == ',')
                    {
                        Position++;
                        continue;
                    }
                    Expect('}');
                    return map;
                }
            }

            private List<object> Array(int depth)
            {
                List<object> items = new List<object>();
                Position++;
                SkipSpace();
                if (Peek() == ']')
                {
                    Position++;
                    return items;
                }
                while (true)
                {
                    items.Add(Value(depth + 1));
                    SkipSpace();
                    if (Peek() == ',')
                    {
                        Position++;
                        continue;
                    }
                    Expect(']');
                    return items;
                }
            }

            private string String()
            {
                Position++;
                StringBuilder builder = new StringBuilder();
                while (true)
                {
                    if (Position >= _text.Length)
                    {
                        throw Error("unterminated string");
                    }
                    char c = _text[Position++];
                    if (c == '"')
                    {
                        return builder.ToString();
                    }
                    if (c < ' ')
                    {
                        throw Error("control character in a string");
                    }
                    if (c != '\\')
                    {
                        builder.Append(c);
                        continue;
                    }
                    if (Position >= _text.Length)
                    {
                        throw Error("unterminated escape");
                    }
                    char escape = _text[Position++];
                    switch (escape)
                    {
                        case '"': builder.Append('"'); break;
                        case '\\': builder.Append('\\'); break;
                        case '/': builder.Append('/'); break;
                        case 'b': builder.Append('\b'); break;
                        case 'f': builder.Append('\f'); break;
                        case 'n': builder.Append('\n'); break;
                        case 'r': builder.Append('\r'); break;
                        case 't': builder.Append('\t'); break;
                        case 'u':
                            int code;
                            if (Position + 4 > _text.Length || !int.TryParse(_text.Substring(Position, 4), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out code))
                            {
                                throw Error("bad \\u escape");
                            }
                            builder.Append((char)code);
                            Position += 4;
                            break;
                        default:
                            throw Error("bad escape \\" + escape);
                    }
                }
            }

            private object Number()
            {
                int start = Position;
                bool isInteger = true;
                while (Position < _text.Length)
                {
                    char c = _text[Position];
                    if (c == '.' || c == 'e' || c == 'E' || c == '+')
                    {
                        isInteger = false;
                    }
                    else if (!(c == '-' || (c >= '0' && c <= '9')))
                    {
                        break;
                    }
                    Position++;
                }
                string token = _text.Substring(start, Position - start);
                long integer;
                if (isInteger && long.TryParse(token, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out integer))
                {
                    return integer;
                }
                double number;
                if (double.TryParse(token, NumberStyles.Float, CultureInfo.InvariantCulture, out number))
                {
                    return number;
                }
                throw Error("bad number '" + token + "'");
            }

            private char Peek()
            {
                if (Position >= _text.Length)
                {
                    throw Error("unexpected end");
                }
                return _text[Position];
            }

            private void Expect(char c)
            {
                if (Peek() != c)
                {
                    throw Error("expected '" + c + "'");
                }
                Position++;
            }
        }
    }
}
