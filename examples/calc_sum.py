"""Helper for map_sum.py: print the sum of -a, -b and -c.

It stands for the external program a bash app would normally wrap:

    python calc_sum.py -a 1 -b 0 -c 1      # prints 2
"""

import argparse


def main():
    parser = argparse.ArgumentParser(description="print a + b + c")
    for name in ("a", "b", "c"):
        parser.add_argument(f"-{name}", type=int, required=True)
    args = parser.parse_args()
    print(args.a + args.b + args.c)


if __name__ == "__main__":
    main()
