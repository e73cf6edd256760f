"""parsl.addresses under farm: the functions Parsl configs call to find the driver's address.

farm's pools never connect to the driver (they read the spool), so a config's address= is
ignored; these return an address of this machine so that such configs run unchanged, and
never fail on an interface this machine lacks (a config written for another cluster).
"""

from __future__ import annotations

import socket

from farm.dataflow.futures import lift_attributes

lift_attributes()  # (a Parsl program: fut.attr lifting, see farm.dataflow.futures)


def address_by_hostname() -> str:
    """This machine's host name."""
    return socket.gethostname()


def address_by_route() -> str:
    """An address of this machine (its host name's, else the loopback address)."""
    try:
        return socket.gethostbyname(socket.gethostname())
    except OSError:
        return "127.0.0.1"


def address_by_interface(ifname: str) -> str:
    """The address of network interface ifname; another address of this machine if it
    has no such interface (farm does not use it)."""
    try:
        import fcntl
        import struct
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            packed = fcntl.ioctl(s.fileno(), 0x8915,  # SIOCGIFADDR
                                 struct.pack("256s", ifname[:15].encode()))
        return socket.inet_ntoa(packed[20:24])
    except OSError:
        return address_by_route()


def address_by_query(timeout: float = 30) -> str:
    """Parsl asks a web service for the public address; farm has no network to ask, and
    no need: an address of this machine."""
    return address_by_route()


def get_all_addresses() -> set[str]:
    """Addresses of this machine (farm does not use them)."""
    return {address_by_route(), "127.0.0.1"}


def get_any_address() -> str:
    return address_by_route()


__all__ = ["address_by_hostname", "address_by_interface", "address_by_query",
           "address_by_route", "get_all_addresses", "get_any_address"]
