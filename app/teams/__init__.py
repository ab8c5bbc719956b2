"""Teams: members with roles, invitations by mail, ownership transfer (issue 21)."""
