"""Who is acting, as the rules see them: the authenticated NetBox user and the manual's four
authorities, from their NetBox groups (PLUGINS_CONFIG["netbox_runbooks"]["groups"], by default
runbook-operators, …) or from object permissions on *Runbooks > change* with the additional
actions handle, review, approve, supervise."""

from __future__ import annotations

from typing import Any

from core.models import ObjectType
from django.db.models import Q, QuerySet
from runbooks_rules.policy import AUTHORITIES, Identity, authorities_from, groups_giving
from users.models import ObjectPermission, User

from netbox_runbooks import group_map

__all__ = ("holders", "identity_of")


def identity_of(user: Any, change: Any = None) -> Identity:
    """The rules' view of ``user``: username and authorities (superusers hold all four).

    Given a ``change``, an object permission counts only if its constraints admit that change
    (a permission to approve pc-install changes does not approve a rack-in); without one, any
    permission counts (what a person may do somewhere: the pages' lists and the widget)."""
    groups = list(user.groups.values_list("name", flat=True))
    permitted = [
        a
        for a in AUTHORITIES
        if (
            user.has_perm(f"netbox_runbooks.{a}_change", change)
            if change is not None
            else user.has_perm(f"netbox_runbooks.{a}_change")
        )
    ]
    return Identity(user.username, authorities_from(groups, permitted, group_map()))


def holders(authority: str) -> QuerySet[User]:
    """The active users who hold ``authority`` through a group or an object permission: the
    people a notification goes to. Superusers are left out unless granted it that way (they
    hold everything, and are told about nothing in particular)."""
    groups = groups_giving(authority, group_map())
    change_type = ObjectType.objects.get_by_natural_key("netbox_runbooks", "change")
    perms = ObjectPermission.objects.filter(
        enabled=True, actions__contains=[authority], object_types=change_type
    )
    return (
        User.objects.filter(is_active=True)
        .filter(
            Q(groups__name__in=groups)
            | Q(object_permissions__in=perms)
            | Q(groups__object_permissions__in=perms)
        )
        .distinct()
        .order_by("username")
    )
