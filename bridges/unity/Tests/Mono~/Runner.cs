// Runs the NUnit-attributed tests of this assembly under plain mono (no Unity, no nunit-console):
// [SetUp], [Test], [TearDown] per test, Assert.Ignore as ignored. Prints one line per test and
// "N passed, N failed, N ignored"; exits 1 on any failure or when nothing ran.
using System;
using System.Diagnostics;
using System.Reflection;
using NUnit.Framework;

namespace NpcEngine.Tests
{
    public static class Runner
    {
        public static int Main(string[] args)
        {
            string filter = args.Length > 0 ? args[0] : "";
            int numPassed = 0, numFailed = 0, numIgnored = 0;
            try
            {
                foreach (Type type in typeof(Runner).Assembly.GetTypes())
                {
                    if (type.GetCustomAttributes(typeof(TestFixtureAttribute), true).Length == 0)
                    {
                        continue;
                    }
                    foreach (MethodInfo test in type.GetMethods())
                    {
                        string name = type.Name + "." + test.Name;
                        if (test.GetCustomAttributes(typeof(TestAttribute), true).Length == 0 || !name.Contains(filter))
                        {
                            continue;
                        }
                        Stopwatch clock = Stopwatch.StartNew();
                        string outcome = Run(type, test);
                        string seconds = clock.Elapsed.TotalSeconds.ToString("F1");
                        if (outcome == null)
                        {
                            numPassed++;
                            Console.WriteLine("PASS " + name + " (" + seconds + " s)");
                        }
                        else if (outcome.StartsWith("ignored: ", StringComparison.Ordinal))
                        {
                            numIgnored++;
                            Console.WriteLine("SKIP " + name + ": " + outcome);
                        }
                        else
                        {
                            numFailed++;
                            Console.WriteLine("FAIL " + name + " (" + seconds + " s): " + outcome);
                        }
                    }
                }
            }
            finally
            {
                TestEnvironment.KillServer();
            }
            Console.WriteLine(numPassed + " passed, " + numFailed + " failed, " + numIgnored + " ignored");
            return numFailed == 0 && numPassed > 0 ? 0 : 1;
        }

        private static string Run(Type type, MethodInfo test)
        {
            object fixture = Activator.CreateInstance(type);
            string outcome = Call(fixture, type, typeof(SetUpAttribute));
            if (outcome == null)
            {
                outcome = Invoke(fixture, test);
            }
            string tearDown = Call(fixture, type, typeof(TearDownAttribute));
            return outcome ?? tearDown;
        }

        private static string Call(object fixture, Type type, Type attribute)
        {
            foreach (MethodInfo method in type.GetMethods())
            {
                if (method.GetCustomAttributes(attribute, true).Length > 0)
                {
                    string outcome = Invoke(fixture, method);
                    if (outcome != null)
                    {
                        return outcome;
                    }
                }
            }
            return null;
        }

        private static string Invoke(object fixture, MethodInfo method)
        {
            try
            {
                method.Invoke(fixture, null);
                return null;
            }
            catch (TargetInvocationException wrapped)
            {
                Exception error = wrapped.InnerException;
                if (error is IgnoreException)
                {
                    return "ignored: " + error.Message;
                }
                if (error is AssertionException)
                {
                    return error.Message.Trim();
                }
                return error.ToString();
            }
        }
    }
}
